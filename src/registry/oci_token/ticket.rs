//! Tickets: the password `/registry/credentials` hands out for `oci-token`.
//!
//! A ticket says "the holder may push to project P until T", and nothing
//! else: `/registry/token` turns it into registry tokens for P only. It is
//! `rise.v1.{payload}.{mac}`, the payload base64url JSON and the MAC
//! HMAC-SHA256 over everything before it. Four dot-separated parts, not
//! three, so no JWT parser (the registry's included) mistakes it for a
//! token; and a MAC rather than the token-signing key, so a ticket can never
//! be accepted by the registry itself.
//!
//! The MAC is checked before the payload is parsed: nothing an attacker
//! writes is interpreted until it is known to be ours.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{AccessKind, Caller};
use crate::config::{AuthConfig, DEFAULT_ISSUER};
use crate::naming::ProjectName;
use crate::secret::Secret;

const PREFIX: &str = "rise.v1.";
/// Longer input is refused before any work. A person's ticket is ~250
/// bytes; a workload's carries the claims its project's rules read (a CI
/// token's `repository`, `ref` and the like: ~500 bytes in all). The bound
/// leaves room for rules on many long claims while keeping the registry's
/// `Authorization: Basic` header (4/3 of this) under serve's 16 KiB
/// header limit.
pub(crate) const MAX_TICKET_BYTES: usize = 10 * 1024;
/// A ticket issued this far in the future (clock skew between replicas) is
/// still accepted.
const ISSUED_AT_LEEWAY: i64 = 60;

/// What a ticket grants. Not secret: the holder can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    #[serde(rename = "prj")]
    pub project: ProjectName,
    /// The caller the ticket was issued to (token `sub`): audited, and
    /// checked against the access rule again on every exchange.
    pub sub: String,
    /// The caller's verified email when the ticket was issued, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The caller's groups when the ticket was issued, only those the
    /// config named for the project then (admins and its `access`): what
    /// the exchange needs to re-check access, and no more, so a member of
    /// many groups does not grow every ticket.
    #[serde(default, rename = "grp", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The name of the issuer of the caller's token, unless it was the
    /// single-issuer keys'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The token's claims that the project's workload rules look at, and
    /// no others: what the exchange needs to apply them again.
    #[serde(default, rename = "clm", skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// The key fingerprint of the issuer entry that verified the caller's
    /// token ([`crate::config::IssuerRef::key_fingerprint`]), bound to the
    /// ticket key ([`TicketKey::bind`]): the ticket is good only while the
    /// running config's entry has the same. Tickets without one (minted
    /// before it existed) match no issuer.
    #[serde(default, rename = "ik")]
    pub issuer_key: String,
    /// `pull` tickets get registry tokens that only pull.
    #[serde(default, rename = "acc", skip_serializing_if = "is_push")]
    pub access: AccessKind,
    pub iat: i64,
    pub exp: i64,
    /// Unique per ticket, for audit.
    pub jti: String,
}

fn is_push(a: &AccessKind) -> bool {
    a.is_push()
}

impl Ticket {
    /// The name of the issuer of the caller's token.
    pub fn issuer(&self) -> &str {
        self.iss.as_deref().unwrap_or(DEFAULT_ISSUER)
    }

    /// The caller the ticket was issued to, with the identities it
    /// carries, as `auth` (the running config) sees its issuer: whether
    /// its principals count is the config's word now, and an issuer
    /// removed since the ticket was issued, or whose `iss` or key source
    /// (a rotated `hs256_secret`, another JWKS URL) changed since, admits
    /// no one (`None`).
    ///
    /// `bind` is [`TicketKey::bind`] of the key that minted it.
    pub fn holder(&self, auth: &AuthConfig, bind: &dyn Fn(&str) -> String) -> Option<Caller> {
        let issuer = auth.issuer_named(self.issuer())?;
        let key = issuer.key_fingerprint();
        if bind(&key) != self.issuer_key {
            return None;
        }
        let mut claims = self.claims.clone();
        // The subject is carried once, as `sub`; rules may read it as a claim.
        claims.insert("sub".to_string(), self.sub.clone());
        Some(Caller {
            issuer: Arc::from(issuer.name()),
            subject: self.sub.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            principals: issuer.principals(),
            claims,
            issuer_key: Arc::from(key),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the password is not a ticket issued by this broker")]
    Malformed,
    #[error("the ticket's signature does not verify")]
    BadSignature,
    #[error("the ticket has expired; get new credentials")]
    Expired,
    #[error("the ticket is not valid yet")]
    NotYetValid,
}

/// Mints and checks tickets.
pub struct TicketKey(hmac::Key);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey([REDACTED])")
    }
}

impl TicketKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// What a ticket carries of an issuer's key fingerprint: keyed with
    /// the ticket key, so a holder, who can read the ticket, learns
    /// nothing it could test guesses of a shared secret against; the same
    /// on every replica with the same signing key.
    pub fn bind(&self, fingerprint: &str) -> String {
        let mut input = b"rise-ticket-issuer-key\0".to_vec();
        input.extend_from_slice(fingerprint.as_bytes());
        let tag = hmac::sign(&self.0, &input);
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn mint(&self, ticket: &Ticket) -> Secret<String> {
        let payload = serde_json::to_vec(ticket).expect("ticket fields serialize");
        let mut text = String::with_capacity(PREFIX.len() + payload.len() * 4 / 3 + 50);
        text.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut text);
        let tag = hmac::sign(&self.0, text.as_bytes());
        text.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut text);
        Secret::new(text)
    }

    /// The ticket in `text`, if it is ours, intact and within its lifetime
    /// at `now` (Unix seconds).
    ///
    /// # Errors
    /// Why it is not acceptable.
    pub fn verify(&self, text: &str, now: i64) -> Result<Ticket, TicketError> {
        if text.len() > MAX_TICKET_BYTES {
            return Err(TicketError::Malformed);
        }
        let rest = text.strip_prefix(PREFIX).ok_or(TicketError::Malformed)?;
        let (payload, tag) = rest.split_once('.').ok_or(TicketError::Malformed)?;
        if payload.is_empty() || tag.contains('.') {
            return Err(TicketError::Malformed);
        }
        let signed = &text[..PREFIX.len() + payload.len()];
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TicketError::Malformed)?;
        hmac::verify(&self.0, signed.as_bytes(), &tag).map_err(|_| TicketError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TicketError::Malformed)?;
        let ticket: Ticket =
            serde_json::from_slice(&payload).map_err(|_| TicketError::Malformed)?;
        if now >= ticket.exp {
            return Err(TicketError::Expired);
        }
        if ticket.iat > now + ISSUED_AT_LEEWAY {
            return Err(TicketError::NotYetValid);
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(project: &str, iat: i64, exp: i64) -> Ticket {
        Ticket {
            project: ProjectName::parse(project).unwrap(),
            sub: "alice".into(),
            email: None,
            groups: vec!["builders".into()],
            iss: None,
            claims: BTreeMap::new(),
            issuer_key: "k".into(),
            access: AccessKind::Push,
            iat,
            exp,
            jti: "j1".into(),
        }
    }

    #[test]
    fn a_minted_ticket_verifies_within_its_lifetime_only() {
        let key = TicketKey::new(b"k");
        let t = ticket("my-app", 1000, 4600);
        let text = key.mint(&t);
        assert!(text.expose().starts_with("rise.v1."));
        assert_eq!(text.expose().split('.').count(), 4, "not JWT-shaped");
        assert_eq!(key.verify(text.expose(), 1000), Ok(t.clone()));
        assert_eq!(key.verify(text.expose(), 4599), Ok(t));
        assert_eq!(key.verify(text.expose(), 4600), Err(TicketError::Expired));
        assert_eq!(
            key.verify(text.expose(), 900),
            Err(TicketError::NotYetValid)
        );
    }

    #[test]
    fn another_key_or_any_changed_byte_is_refused() {
        let key = TicketKey::new(b"k");
        let text = key.mint(&ticket("my-app", 1000, 4600));
        let text = text.expose();
        assert_eq!(
            TicketKey::new(b"other").verify(text, 1000),
            Err(TicketError::BadSignature)
        );
        // A payload rewritten to another project, signature kept.
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&ticket("other-app", 1000, 4600)).unwrap());
        let parts: Vec<&str> = text.split('.').collect();
        let forged = format!("rise.v1.{forged_payload}.{}", parts[3]);
        assert_eq!(key.verify(&forged, 1000), Err(TicketError::BadSignature));
        for i in PREFIX.len()..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != *text {
                assert!(key.verify(&changed, 1000).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn shapes_that_are_not_tickets_are_malformed() {
        let key = TicketKey::new(b"k");
        for bad in [
            "",
            "rise.v1.",
            "rise.v2.a.b",
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
            "rise.v1.a.b.c",
            "rise.v1.!!!.b",
        ] {
            assert!(
                matches!(
                    key.verify(bad, 0),
                    Err(TicketError::Malformed | TicketError::BadSignature)
                ),
                "{bad}"
            );
        }
        let long = format!("rise.v1.{}.x", "a".repeat(MAX_TICKET_BYTES));
        assert_eq!(key.verify(&long, 0), Err(TicketError::Malformed));
    }

    #[test]
    fn a_signed_payload_with_an_invalid_project_is_still_refused() {
        let key = TicketKey::new(b"k");
        let payload =
            URL_SAFE_NO_PAD.encode(br#"{"prj":"../x","sub":"a","iat":0,"exp":99999,"jti":"j"}"#);
        let signed = format!("rise.v1.{payload}");
        let tag = hmac::sign(&key.0, signed.as_bytes());
        let text = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(key.verify(&text, 1), Err(TicketError::Malformed));
    }
}
