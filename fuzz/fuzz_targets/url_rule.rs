//! The one URL rule (`https::check_url`) for every URL a bearer credential
//! is sent to or keys come from, and the URLs login and serve build on
//! top of an accepted one.
//!
//! Whatever the rule accepts, a reference reading of the raw text (written
//! here without `hyper`) agrees: the scheme is http or https, there is no
//! user info, the authority hyper connects to is the one a reader sees, and
//! plain http goes to loopback only. Every URL built from an accepted one
//! (login's credentials request, GitHub Actions' token request, an
//! issuer's discovery document) is accepted too and goes to the same host
//! and port.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rise_registry::auth::AccessKind;
use rise_registry::auth::jwks::discovery_url;
use rise_registry::commands::login::{broker_base, credentials_url, github_token_url};
use rise_registry::https::check_url;
use rise_registry::naming::ProjectName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The URL, then (after a newline) an audience, as a workflow sets it.
    let (url, audience) = text.split_once('\n').unwrap_or((text, "rise"));
    let Ok(uri) = check_url(url) else {
        return;
    };
    let authority = uri
        .authority()
        .expect("an accepted URL has a host")
        .as_str();
    let seen = Reading::of(url);
    assert_eq!(seen.authority, authority, "{url:?}");
    assert!(!authority.contains('@'), "{url:?}");
    assert!(!seen.host.is_empty(), "{url:?}");
    let port = &seen.authority[seen.host.len()..];
    assert!(
        port.is_empty()
            || port[1..]
                .parse::<u16>()
                .is_ok_and(|_| port[1..].bytes().all(|b| b.is_ascii_digit())),
        "port {port:?} accepted: {url:?}"
    );
    if let Some(ip) = seen.host.strip_prefix('[') {
        let ip = ip.strip_suffix(']').expect("a closing bracket");
        assert!(ip.parse::<Ipv6Addr>().is_ok(), "[{ip}] accepted: {url:?}");
    }
    match seen.scheme.as_str() {
        "https" => {}
        "http" => assert!(seen.loopback(), "plain http to {:?}: {url:?}", seen.host),
        other => panic!("scheme {other:?} accepted: {url:?}"),
    }

    let same_place = |built: &str, what: &str| {
        let again = check_url(built)
            .unwrap_or_else(|e| panic!("{what} {built:?} from {url:?} is refused: {e:?}"));
        assert_eq!(
            again.authority().map(|a| a.as_str()),
            Some(authority),
            "{what} {built:?} goes elsewhere than {url:?}"
        );
    };
    if !url.contains(['#']) {
        same_place(&github_token_url(url, audience), "the token request");
    }
    if let Ok(base) = broker_base(url) {
        let project = ProjectName::parse("my-app").expect("a valid name");
        for access in [AccessKind::Push, AccessKind::Pull] {
            same_place(
                &credentials_url(&base, &project, access),
                "the credentials request",
            );
        }
    }
    if uri.query().is_none() && !url.contains('#') {
        same_place(&discovery_url(url.trim()), "the discovery URL");
    }
});

/// The raw text read by hand: scheme before `://`, authority up to the
/// first `/`, `?` or `#`, host without its port.
struct Reading {
    scheme: String,
    authority: String,
    host: String,
}

impl Reading {
    fn of(url: &str) -> Self {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = if authority.starts_with('[') {
            authority.find(']').map_or(authority, |i| &authority[..=i])
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        Self {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_string(),
            host: host.to_string(),
        }
    }

    /// `localhost`, `127.0.0.0/8`, `[::1]` or `[::ffff:127.x.y.z]`.
    fn loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Ok(v4) = self.host.parse::<Ipv4Addr>() {
            return v4.octets()[0] == 127;
        }
        let Some(inner) = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
        else {
            return false;
        };
        match inner.parse::<Ipv6Addr>().map(|a| a.segments()) {
            Ok([0, 0, 0, 0, 0, 0, 0, 1]) => true,
            Ok([0, 0, 0, 0, 0, 0xffff, high, _]) => high >> 8 == 127,
            _ => false,
        }
    }
}
