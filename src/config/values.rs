//! Parsers of single config values that are not names: addresses, URLs
//! and the registry token's `service`/`issuer`. Values spliced into ARNs,
//! policies and image paths are newtypes in [`crate::naming`] instead.

use std::net::SocketAddr;

use super::error::Problem;
use crate::https::UrlProblem;

pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, Problem> {
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

/// Keys come from a JWKS URL, so it is held to [`crate::https::check_url`]:
/// plain HTTP is allowed only when the host itself is loopback, and a URL
/// with user info (`user@host`, which reads like one host and fetches from
/// another) is refused.
pub(crate) fn jwks_url(s: &str) -> Result<String, Problem> {
    let url = http_url(s)?;
    match crate::https::check_url(s) {
        Ok(_) => Ok(url),
        Err(UrlProblem::UserInfo) => Err(Problem::new(format!(
            "`{s}` has user info (`…@`) before its host"
        ))
        .hint(
            "write the URL without `user:password@`; keys are fetched from the host after the `@`",
        )),
        Err(UrlProblem::PlainHttp) => Err(Problem::new(format!("`{s}` must use https://"))
            .hint("token-verification keys fetched over plain HTTP could be swapped in transit")),
        Err(UrlProblem::NotHttp) => Err(Problem::new(format!("`{s}` is not a URL"))),
    }
}

/// The name of an `auth.issuers` entry, as workload rules and logs use
/// it: short, lower case, no spaces.
pub(super) fn issuer_name(s: &str) -> Result<String, Problem> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(Problem::new(format!(
            "`{s}` is not an issuer name: 1 to 32 of a-z, 0-9 and `-`"
        ))
        .hint("for example `github` or `gitlab`"))
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

/// A character AWS allows in tag keys and values: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`
/// (the same pattern for ECR and IAM). Letters are Rust's alphabetic
/// characters, which adds a few combining marks to `\p{L}`; separators
/// are the white space that is not a control character, exactly `\p{Z}`.
fn tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

/// A tag key or value: at most `max` characters, each one AWS allows.
pub(super) fn tag_text(what: &str, s: &str, max: usize) -> Result<(), Problem> {
    if s.chars().count() > max {
        return Err(Problem::new(format!(
            "tag {what}s are at most {max} characters; this one has {}",
            s.chars().count()
        )));
    }
    match s.chars().find(|c| !tag_char(*c)) {
        Some(c) => Err(Problem::new(format!(
            "tag {what} `{}` has `{}`, which AWS does not allow in tags",
            s.escape_default(),
            c.escape_default()
        ))
        .hint("tags take letters, digits, spaces and `_ . : / = + - @`")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_are_https_or_plain_http_on_a_loopback_host_only() {
        for ok in [
            "https://keys.example.com/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
            "http://127.0.0.2/jwks",
        ] {
            assert_eq!(jwks_url(ok).unwrap(), ok);
        }
        let e = jwks_url("http://localhost:1@keys.example.com/jwks.json").unwrap_err();
        assert!(e.message.contains("user info"), "{e:?}");
        let e = jwks_url("https://user:pw@keys.example.com/jwks.json").unwrap_err();
        assert!(e.message.contains("user info"), "{e:?}");
        for remote in [
            "http://keys.example.com/jwks.json",
            "http://localhost.example.com/jwks",
            "http://127.0.0.1.example.com/jwks",
        ] {
            let e = jwks_url(remote).unwrap_err();
            assert!(e.message.ends_with("must use https://"), "{remote}: {e:?}");
        }
        assert!(jwks_url("ftp://x/jwks").is_err());
    }

    #[test]
    fn tag_text_takes_aws_tag_characters_only() {
        assert!(tag_text("key", "Team Name_1.a:b/c=d+e-f@g", 128).is_ok());
        assert!(tag_text("value", "Ümlaut 東京 ٣", 256).is_ok());
        for bad in ["a,b", "a!b", "tab\there", "quote\"", "a*"] {
            assert!(tag_text("value", bad, 256).is_err(), "{bad}");
        }
        assert!(tag_text("key", &"k".repeat(129), 128).is_err());
        assert!(
            tag_text("key", &"ü".repeat(128), 128).is_ok(),
            "characters, not bytes"
        );
    }
}
