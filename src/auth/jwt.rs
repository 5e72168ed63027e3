//! Bearer-token verification: signature by `jsonwebtoken`, every claim rule
//! here, with `now` passed in so lifetimes are tested without clocks.
//!
//! Rules, in the order they are applied (cheap and structural first):
//! 1. at most [`MAX_TOKEN_BYTES`], three base64url parts;
//! 2. the header's `alg` must be one this issuer has a key for: HS256 with
//!    `auth.hs256_secret`, RS256/ES256 with a JWKS key of the same family,
//!    among the issuer's `algorithms`. `none` and any HS/RS confusion are
//!    refused (a JWKS key never verifies an HS256 token, the shared secret
//!    never verifies an RS256 one);
//! 3. the signature;
//! 4. `exp` required, `nbf` honoured, both with the issuer's leeway
//!    ([`LEEWAY_SECONDS`] unless configured); `iss` and `aud` checked when
//!    configured (always for `auth.issuers` entries); `sub` required.
//!
//! Which issuer's rules apply is decided before, from the token's
//! unverified `iss` ([`unverified_issuer`]), by [`super::Authenticator`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::Caller;
use crate::config::{AuthConfig, IssuerRef, JwtAlgorithm};

/// Larger tokens are refused before any parsing.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
pub(crate) const LEEWAY_SECONDS: i64 = 30;

/// Why a token was refused. Shown to the caller (it says nothing about
/// projects or keys) and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted here")]
    Algorithm,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lives longer than this broker accepts (auth.max_token_lifetime_seconds)")]
    TooLong,
    #[error("the token's issuer is not accepted")]
    Issuer,
    #[error("the token's audience is not accepted")]
    Audience,
}

/// The public keys of a JWKS, by key id.
#[derive(Clone, Default)]
pub struct JwksKeys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    /// Keys without a `kid`, tried in turn for tokens without one.
    anonymous: Vec<(DecodingKey, Algorithm)>,
}

impl std::fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.by_kid.keys().collect();
        kids.sort();
        f.debug_struct("JwksKeys")
            .field("kids", &kids)
            .field("anonymous", &self.anonymous.len())
            .finish()
    }
}

impl JwksKeys {
    /// Reads a JWKS document. RSA keys verify RS256, P-256 keys ES256; other
    /// keys (and keys for other uses) are skipped, since no token of ours can
    /// use them.
    ///
    /// # Errors
    /// When the document is not a JWKS.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Self::default();
        for jwk in &set.keys {
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            // A key that names its algorithm must name the one we infer.
            if let Some(named) = jwk.common.key_algorithm
                && named.to_string() != format!("{alg:?}")
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), (key, alg));
                }
                None => keys.anonymous.push((key, alg)),
            }
        }
        Ok(keys)
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The static part of verifying one issuer's tokens: its shared secret,
/// accepted algorithms and claim rules.
pub struct Rules {
    /// The issuer's name in config ([`crate::config::DEFAULT_ISSUER`] for
    /// the single-issuer keys).
    name: Arc<str>,
    /// [`IssuerRef::key_fingerprint`]: what a ticket of its callers carries.
    key: Arc<str>,
    hs256: Option<DecodingKey>,
    issuer: Option<String>,
    /// Accepted `aud` values; empty means `aud` is not checked (only the
    /// single-issuer keys without `audience`).
    audiences: Vec<String>,
    rs256: bool,
    es256: bool,
    leeway: i64,
    /// `auth.max_token_lifetime_seconds`.
    max_lifetime: i64,
    principals: bool,
    groups_claim: String,
    /// `auth.allow_unverified_email`: count `email` as an identity without
    /// `email_verified: true`, for identity providers that never send it.
    allow_unverified_email: bool,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("name", &self.name)
            .field(
                "hs256",
                &self.hs256.as_ref().map(|_| crate::secret::REDACTED),
            )
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("rs256", &self.rs256)
            .field("es256", &self.es256)
            .field("leeway", &self.leeway)
            .field("principals", &self.principals)
            .field("groups_claim", &self.groups_claim)
            .field("allow_unverified_email", &self.allow_unverified_email)
            .finish()
    }
}

impl Rules {
    /// The rules of the single-issuer keys of `auth`.
    pub fn new(auth: &AuthConfig) -> Self {
        Self::for_issuer(IssuerRef::Single(auth), auth.max_token_lifetime_seconds)
    }

    /// The rules of one trusted issuer.
    /// The rules of one trusted issuer, refusing tokens that live longer
    /// than `max_lifetime` seconds (`auth.max_token_lifetime_seconds`).
    pub fn for_issuer(issuer: IssuerRef<'_>, max_lifetime: u32) -> Self {
        match issuer {
            IssuerRef::Single(auth) => Self {
                name: Arc::from(issuer.name()),
                key: Arc::from(issuer.key_fingerprint()),
                hs256: auth
                    .hs256_secret
                    .as_ref()
                    // Only fails on an empty secret, which config rejects.
                    .and_then(|s| DecodingKey::from_secret(s.expose().as_bytes()).ok()),
                issuer: auth.issuer.clone(),
                audiences: auth.audience.iter().cloned().collect(),
                rs256: true,
                es256: true,
                leeway: LEEWAY_SECONDS,
                max_lifetime: i64::from(max_lifetime),
                principals: issuer.principals(),
                groups_claim: auth.groups_claim.clone(),
                allow_unverified_email: auth.allow_unverified_email,
            },
            IssuerRef::Listed(i) => Self {
                name: Arc::from(i.name.as_str()),
                key: Arc::from(issuer.key_fingerprint()),
                hs256: None,
                issuer: Some(i.issuer.clone()),
                audiences: i.audience.clone(),
                rs256: i.algorithms.contains(&JwtAlgorithm::RS256),
                es256: i.algorithms.contains(&JwtAlgorithm::ES256),
                leeway: i64::from(i.leeway_seconds),
                max_lifetime: i64::from(max_lifetime),
                principals: issuer.principals(),
                groups_claim: i.groups_claim.clone(),
                allow_unverified_email: false,
            },
        }
    }

    pub(crate) fn has_hs256(&self) -> bool {
        self.hs256.is_some()
    }

    /// The `iss` this issuer's tokens must carry, when one is configured.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, alg: Algorithm) -> bool {
        match alg {
            Algorithm::RS256 => self.rs256,
            Algorithm::ES256 => self.es256,
            _ => false,
        }
    }
}

/// The `iss` of a token, read without verifying anything: only to pick the
/// issuer whose keys and rules then verify it. `None` when it has none.
///
/// # Errors
/// [`TokenError::Malformed`] when the payload is not base64url JSON.
pub(crate) fn unverified_issuer(token: &str) -> Result<Option<String>, TokenError> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<Value>,
    }
    key_request(token)?;
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let parsed: Iss = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    Ok(parsed.iss.and_then(|v| v.as_str().map(str::to_string)))
}

/// Which key a token asks for, read from its header without trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRequest {
    Hs256,
    Jwks { alg: Algorithm, kid: Option<String> },
}

/// Step 1 and 2: size, shape and algorithm.
///
/// # Errors
/// [`TokenError::TooLarge`], [`TokenError::Malformed`] or
/// [`TokenError::Algorithm`].
pub(crate) fn key_request(token: &str) -> Result<KeyRequest, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let parts = token.split('.').count();
    let charset_ok = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if parts != 3 || !charset_ok {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    match header.alg {
        Algorithm::HS256 => Ok(KeyRequest::Hs256),
        alg @ (Algorithm::RS256 | Algorithm::ES256) => Ok(KeyRequest::Jwks {
            alg,
            kid: header.kid,
        }),
        _ => Err(TokenError::Algorithm),
    }
}

/// Steps 3 and 4, given the JWKS keys currently known.
///
/// # Errors
/// Any [`TokenError`]; `UnknownKey` tells the caller a JWKS refresh may help.
pub fn verify(
    rules: &Rules,
    jwks: &JwksKeys,
    token: &str,
    now: i64,
) -> Result<Verified, TokenError> {
    let candidates: Vec<(&DecodingKey, Algorithm)> = match key_request(token)? {
        KeyRequest::Hs256 => match &rules.hs256 {
            Some(key) => vec![(key, Algorithm::HS256)],
            None => return Err(TokenError::Algorithm),
        },
        KeyRequest::Jwks { alg, kid } => {
            let keys: Vec<_> = match kid {
                Some(kid) => jwks
                    .by_kid
                    .get(&kid)
                    .into_iter()
                    .map(|(k, a)| (k, *a))
                    .collect(),
                None => jwks.anonymous.iter().map(|(k, a)| (k, *a)).collect(),
            };
            if !rules.accepts(alg) {
                return Err(TokenError::Algorithm);
            }
            // The key's own family decides; a token cannot pick another.
            let keys: Vec<_> = keys.into_iter().filter(|(_, a)| *a == alg).collect();
            if keys.is_empty() {
                return Err(TokenError::UnknownKey);
            }
            keys
        }
    };
    let claims = candidates
        .iter()
        .find_map(|(key, alg)| signature_checked(token, key, *alg).ok())
        .ok_or(TokenError::Signature)?;
    check_claims(rules, &claims, now)
}

fn signature_checked(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Map<String, Value>, TokenError> {
    let mut validation = Validation::new(alg);
    // Claims are checked by `check_claims`, against the `now` we were given.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| TokenError::Signature)
}

fn check_claims(
    rules: &Rules,
    claims: &Map<String, Value>,
    now: i64,
) -> Result<Verified, TokenError> {
    let number = |name: &'static str| claims.get(name).and_then(Value::as_f64);
    let lifetime = Lifetime {
        exp: number("exp").ok_or(TokenError::MissingClaim("exp"))?,
        nbf: number("nbf"),
        leeway: rules.leeway,
    };
    if claims.contains_key("nbf") && lifetime.nbf.is_none() {
        return Err(TokenError::Malformed);
    }
    lifetime.check(now)?;
    // `exp` is a number a signer may set to anything (1e308): past the
    // ceiling, a leaked token would be good for ever.
    if lifetime.exp - now as f64 > (rules.max_lifetime + rules.leeway) as f64 {
        return Err(TokenError::TooLong);
    }
    if let Some(issuer) = &rules.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(TokenError::Issuer);
    }
    if !rules.audiences.is_empty() {
        let accepted = |a: &str| rules.audiences.iter().any(|want| want == a);
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => accepted(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(accepted),
            _ => false,
        };
        if !ok {
            return Err(TokenError::Audience);
        }
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::MissingClaim("sub"))?
        .to_string();
    // An address proves nothing unless the issuer vouches for it with the
    // boolean `true`: a missing claim, `false` or the string "true" (a
    // provider that lets users set claims could send any of them) do not.
    let verified = rules.allow_unverified_email
        || claims.get("email_verified").and_then(Value::as_bool) == Some(true);
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| verified && !e.is_empty())
        .map(str::to_string);
    let groups = match claims.get(&rules.groups_claim) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(g)) => vec![g.clone()],
        _ => Vec::new(),
    };
    // Workload rules look at string claims only: a number or a list has no
    // one text to compare exactly.
    let strings: BTreeMap<String, String> = claims
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    Ok(Verified {
        caller: Caller {
            issuer: rules.name.clone(),
            subject,
            email,
            groups,
            principals: rules.principals,
            claims: strings,
            issuer_key: rules.key.clone(),
        },
        lifetime,
    })
}

/// A token's `exp` and `nbf`, and its issuer's leeway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifetime {
    pub exp: f64,
    pub nbf: Option<f64>,
    /// Clock skew tolerated either way, in seconds.
    pub leeway: i64,
}

impl Lifetime {
    /// Whether the token is valid at `now`, with the leeway either way.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::NotYetValid`].
    pub fn check(&self, now: i64) -> Result<(), TokenError> {
        if (now - self.leeway) as f64 >= self.exp {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = self.nbf
            && ((now + self.leeway) as f64) < nbf
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// A token that passed every check, and its lifetime for later re-checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub caller: Caller,
    pub lifetime: Lifetime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "unit-test-secret-unit-test-secret-0123";
    const NOW: i64 = 1_800_000_000;

    fn rules(issuer: Option<&str>, audience: Option<&str>) -> Rules {
        Rules::new(&AuthConfig {
            issuer: issuer.map(str::to_string),
            audience: audience.map(str::to_string),
            hs256_secret: Some(Secret::new(SECRET.to_string())),
            jwks_url: None,
            groups_claim: "groups".into(),
            admins: vec![],
            project_managers: vec![],
            jwks_min_refresh_seconds: 30,
            max_token_lifetime_seconds: 86_400,
            allow_unverified_email: false,
            issuers: vec![],
        })
    }

    fn hs(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn check(token: &str) -> Result<Caller, TokenError> {
        verify(
            &rules(Some("iss"), Some("rise")),
            &JwksKeys::default(),
            token,
            NOW,
        )
        .map(|v| v.caller)
    }

    fn base() -> Value {
        json!({"sub": "u1", "exp": NOW + 60, "iss": "iss", "aud": "rise",
               "email": "a@example.com", "email_verified": true,
               "groups": ["team-a", "platform"]})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut c = base();
        c[key] = value;
        c
    }

    fn without(key: &str) -> Value {
        let mut c = base();
        c.as_object_mut().unwrap().remove(key);
        c
    }

    #[test]
    fn a_token_may_not_live_longer_than_the_ceiling() {
        // A day (the default ceiling) and the leeway pass; a second more,
        // two days, or an `exp` of 1e308 do not.
        assert!(check(&hs(with("exp", json!(NOW + 86_400)))).is_ok());
        assert!(check(&hs(with("exp", json!(NOW + 86_400 + LEEWAY_SECONDS)))).is_ok());
        for exp in [
            json!(NOW + 86_400 + LEEWAY_SECONDS + 1),
            json!(NOW + 2 * 86_400),
            json!(1e308),
        ] {
            assert_eq!(
                check(&hs(with("exp", exp.clone()))).err(),
                Some(TokenError::TooLong),
                "{exp}"
            );
        }
    }

    #[test]
    fn a_good_token_yields_the_caller() {
        let caller = check(&hs(base())).unwrap();
        assert_eq!(caller.subject, "u1");
        assert_eq!(caller.email.as_deref(), Some("a@example.com"));
        assert_eq!(caller.groups, ["team-a", "platform"]);
    }

    #[test]
    fn lifetimes_are_checked_against_the_given_now_with_leeway() {
        assert!(check(&hs(with("exp", json!(NOW - LEEWAY_SECONDS + 1)))).is_ok());
        assert_eq!(
            check(&hs(with("exp", json!(NOW - LEEWAY_SECONDS)))),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check(&hs(without("exp"))),
            Err(TokenError::MissingClaim("exp"))
        );
        assert!(check(&hs(with("nbf", json!(NOW + LEEWAY_SECONDS)))).is_ok());
        assert_eq!(
            check(&hs(with("nbf", json!(NOW + LEEWAY_SECONDS + 1)))),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            check(&hs(with("exp", json!("tomorrow")))),
            Err(TokenError::MissingClaim("exp"))
        );
    }

    #[test]
    fn issuer_audience_and_subject() {
        assert_eq!(
            check(&hs(with("iss", json!("evil")))),
            Err(TokenError::Issuer)
        );
        assert_eq!(check(&hs(without("iss"))), Err(TokenError::Issuer));
        assert_eq!(
            check(&hs(with("aud", json!("other")))),
            Err(TokenError::Audience)
        );
        assert!(check(&hs(with("aud", json!(["other", "rise"])))).is_ok());
        assert_eq!(
            check(&hs(without("sub"))),
            Err(TokenError::MissingClaim("sub"))
        );
        // Unconfigured checks are skipped.
        let lax = rules(None, None);
        assert!(verify(&lax, &JwksKeys::default(), &hs(without("aud")), NOW).is_ok());
    }

    #[test]
    fn unverified_emails_are_not_identities() {
        assert_eq!(
            check(&hs(base())).unwrap().email.as_deref(),
            Some("a@example.com")
        );
        for unverified in [json!(false), json!("true"), json!(1), Value::Null] {
            let caller = check(&hs(with("email_verified", unverified.clone()))).unwrap();
            assert_eq!(caller.email, None, "email_verified: {unverified}");
        }
        let caller = check(&hs(without("email_verified"))).unwrap();
        assert_eq!(caller.email, None, "a missing claim vouches for nothing");
        // The documented opt-out, for providers that never send the claim.
        let mut lenient = rules(Some("iss"), Some("rise"));
        lenient.allow_unverified_email = true;
        let caller = verify(
            &lenient,
            &JwksKeys::default(),
            &hs(without("email_verified")),
            NOW,
        )
        .unwrap()
        .caller;
        assert_eq!(caller.email.as_deref(), Some("a@example.com"));
        let caller = check(&hs(with("groups", json!("solo")))).unwrap();
        assert_eq!(caller.groups, ["solo"]);
    }

    #[test]
    fn signatures_and_algorithms() {
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &base(),
            &EncodingKey::from_secret(b"another-secret-another-secret-00").unwrap(),
        )
        .unwrap();
        assert_eq!(check(&forged), Err(TokenError::Signature));
        // Payload swapped under a valid signature.
        let good = hs(base());
        let evil = hs(with("sub", json!("admin")));
        let parts: Vec<&str> = good.split('.').collect();
        let evil_payload = evil.split('.').nth(1).unwrap();
        assert_eq!(
            check(&format!("{}.{evil_payload}.{}", parts[0], parts[2])),
            Err(TokenError::Signature)
        );
        // alg none.
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        assert_eq!(
            check(&format!("{none_header}.{}.", parts[1])),
            Err(TokenError::Malformed)
        );
        // HS384 is not offered.
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &base(),
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(check(&hs384), Err(TokenError::Algorithm));
        // An RS256 header with no JWKS configured finds no key, even though
        // the HS secret is there: no HS/RS confusion.
        let rs_header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"RS256","typ":"JWT"}
        assert_eq!(
            check(&format!("{rs_header}.{}.{}", parts[1], parts[2])),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn structural_rejections_come_first() {
        assert_eq!(
            check(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLarge)
        );
        for bad in ["", "abc", "a.b", "a.b.c.d", "a b.c.d", "e30.e30.e30%"] {
            assert_eq!(check(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }
}
