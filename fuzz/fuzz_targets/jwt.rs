//! Bearer-token handling. The first byte picks the mode:
//! - even: the rest is a token string, verified as serve would (header
//!   parsing, algorithm choice, signature);
//! - odd: the rest is a claims document, signed here with the configured
//!   HS256 secret, so claim handling (types, lifetimes, groups, email) is
//!   reached past the signature check;
//! - and always: the rest as a JWKS document.
//!
//! Nothing may panic, and a verified caller always has a non-empty subject.
#![no_main]

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use rise_registry::auth::jwt::{JwksKeys, Rules, verify};
use rise_registry::config::AuthConfig;
use rise_registry::secret::Secret;

const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
const NOW: i64 = 1_767_268_800;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let auth = AuthConfig {
        issuer: Some("iss".into()),
        audience: Some("rise".into()),
        hs256_secret: Some(Secret::new(SECRET.into())),
        jwks_url: None,
        groups_claim: "groups".into(),
        admins: Vec::new(),
        project_managers: Vec::new(),
        jwks_min_refresh_seconds: 30,
        max_token_lifetime_seconds: 86_400,
        allow_unverified_email: mode & 2 != 0,
        issuers: Vec::new(),
    };
    let rules = Rules::new(&auth);
    let jwks = JwksKeys::parse(rest).unwrap_or_else(|_| {
        JwksKeys::parse(br#"{"keys":[]}"#).expect("an empty key set parses")
    });
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(rest));
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        let tag = hmac::sign(&key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    if let Ok(verified) = verify(&rules, &jwks, &token, NOW) {
        assert!(!verified.caller.subject.is_empty());
        assert!(verified.lifetime.check(NOW).is_ok());
    }
});
