//! `oci-token`: project-scoped push credentials for a CNCF distribution
//! registry (`registry:2`, Debian's `docker-registry`) set up for token
//! authentication, with serve's `/registry/token` as its realm.
//!
//! Two kinds of credential, kept apart on purpose:
//! - a **ticket** ([`ticket`]), the password `/registry/credentials` returns:
//!   MAC-signed, bound to one project, useless to the registry itself;
//! - a **registry token** (a JWS signed by [`keys::SigningKey`] with the
//!   `x5c` chain), which `/registry/token` issues for a valid ticket and the
//!   registry checks on every request. Its `access` claim names only
//!   `{namespace}/{project}` ([`scope::grant`]).
//!
//! Everything here is pure apart from [`OciTokenProvider::load`], which
//! reads the two PEM files; time comes in as an argument.

pub mod keys;
pub mod scope;
pub mod ticket;

use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::rand::SecureRandom;
use serde::Serialize;

use super::RegistryCredentials;
use crate::auth::{AccessKind, Caller};
use crate::clock::unix_now;
use crate::config::{ConfigErrors, DEFAULT_ISSUER, OciTokenConfig};
use crate::naming::ProjectName;
use keys::SigningKey;
use scope::Access;
use ticket::{Ticket, TicketError, TicketKey};

/// The username in credentials. The registry never sees it and the realm
/// ignores it: the ticket alone carries the grant.
pub(crate) const USERNAME: &str = "rise";

#[derive(Debug)]
pub struct OciTokenProvider {
    config: OciTokenConfig,
    key: SigningKey,
    tickets: TicketKey,
}

/// A registry token and what it grants.
#[derive(Debug)]
pub struct RegistryToken {
    pub token: String,
    pub access: Vec<Access>,
    pub issued_at: i64,
    pub expires_in: i64,
}

/// The claims of a registry token, as distribution reads them.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: &'a str,
    access: &'a [Access],
}

impl OciTokenProvider {
    /// The soonest expiry of the signing chain, Unix seconds.
    pub fn certificate_expiry(&self) -> Option<i64> {
        crate::x509::soonest_expiry(self.key.chain().iter().map(|c| c.as_ref()))
    }

    /// Reads the key and chain files named by `config`.
    ///
    /// # Errors
    /// Each problem at the config key of the file it is about: a file that
    /// cannot be read (both, when neither can), a key or chain that cannot
    /// be used, a key the chain's leaf does not certify.
    pub fn load(config: &OciTokenConfig) -> Result<Self, ConfigErrors> {
        let (key, chain) = (&config.signing_key_file, &config.certificate_chain_file);
        let (key_pem, chain_pem) = match (key.read(), chain.read()) {
            (Ok(k), Ok(c)) => (k, c),
            (k, c) => {
                return Err(ConfigErrors::sorted(
                    k.err().into_iter().chain(c.err()).collect(),
                ));
            }
        };
        Self::from_pem(config.clone(), &key_pem, &chain_pem).map_err(|e| {
            let error = match e {
                keys::KeyError::NoKey | keys::KeyError::UnsupportedKey => key.problem(&e),
                keys::KeyError::NoCertificate | keys::KeyError::BadLeaf(_) => chain.problem(&e),
                keys::KeyError::KeyMismatch => key.problem(format!(
                    "{e}; the chain is `{chain}` (registry.certificate_chain_file)"
                )),
            };
            ConfigErrors::sorted(vec![error])
        })
    }

    /// # Errors
    /// When the key or chain is unusable.
    pub fn from_pem(
        config: OciTokenConfig,
        key_pem: &[u8],
        chain_pem: &[u8],
    ) -> Result<Self, keys::KeyError> {
        let key = SigningKey::load(key_pem, chain_pem)?;
        let tickets = TicketKey::new(key.ticket_secret());
        Ok(Self {
            config,
            key,
            tickets,
        })
    }

    pub fn config(&self) -> &OciTokenConfig {
        &self.config
    }

    /// The one repository a ticket for `project` reaches.
    pub fn repository(&self, project: &ProjectName) -> String {
        format!("{}/{project}", self.config.namespace)
    }

    /// A ticket for `project`, issued to `holder` at `now`. The holder's
    /// identities go into the ticket as given: narrow them first
    /// ([`Caller::narrowed_to`]).
    pub fn issue_ticket(
        &self,
        project: &ProjectName,
        holder: &Caller,
        now: i64,
    ) -> RegistryCredentials {
        self.issue_ticket_for(project, holder, AccessKind::Push, now)
    }

    /// As [`Self::issue_ticket`], for `access` (a `pull` ticket never gets
    /// `push` granted).
    pub fn issue_ticket_for(
        &self,
        project: &ProjectName,
        holder: &Caller,
        access: AccessKind,
        now: i64,
    ) -> RegistryCredentials {
        let exp = now + i64::from(self.config.ticket_ttl_seconds);
        let ticket = Ticket {
            project: project.clone(),
            sub: holder.subject.clone(),
            email: holder.email.clone(),
            groups: holder.groups.clone(),
            iss: (*holder.issuer != *DEFAULT_ISSUER).then(|| holder.issuer.to_string()),
            claims: holder.claims.clone(),
            issuer_key: self.tickets.bind(&holder.issuer_key),
            access,
            iat: now,
            exp,
            jti: random_id(),
        };
        RegistryCredentials {
            registry_url: self.config.registry_url.to_string(),
            username: USERNAME.to_string(),
            password: self.tickets.mint(&ticket),
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(exp.max(0) as u64)),
            image: format!("{}/{}", self.config.registry_url, self.repository(project)),
        }
    }

    /// A ticket for `project`, issued to `holder` now: what
    /// `/registry/credentials` hands out.
    pub fn credentials(
        &self,
        project: &ProjectName,
        holder: &Caller,
        access: AccessKind,
    ) -> RegistryCredentials {
        self.issue_ticket_for(project, holder, access, unix_now())
    }

    /// [`TicketKey::bind`] with this broker's ticket key: what its tickets
    /// carry of an issuer's key fingerprint.
    pub fn bind_issuer_key(&self, fingerprint: &str) -> String {
        self.tickets.bind(fingerprint)
    }

    /// # Errors
    /// When `text` is not a valid, current ticket of this broker.
    pub fn verify_ticket(&self, text: &str, now: i64) -> Result<Ticket, TicketError> {
        self.tickets.verify(text, now)
    }

    /// A registry token for a verified `ticket`, granting what of `scopes`
    /// its project may have (only `pull` for a pull ticket). Never outlives
    /// the ticket.
    pub fn registry_token<'a>(
        &self,
        ticket: &Ticket,
        scopes: impl IntoIterator<Item = &'a str>,
        now: i64,
    ) -> RegistryToken {
        let access = scope::grant(scopes, &self.repository(&ticket.project), ticket.access);
        let exp = (now + i64::from(self.config.token_ttl_seconds)).min(ticket.exp);
        let jti = random_id();
        let token = self.key.sign(&Claims {
            iss: &self.config.issuer,
            sub: &ticket.sub,
            aud: &self.config.service,
            exp,
            nbf: now,
            iat: now,
            jti: &jti,
            access: &access,
        });
        RegistryToken {
            token,
            access,
            issued_at: now,
            expires_in: exp - now,
        }
    }
}

/// 128 random bits, hex: token and ticket ids.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn provider() -> OciTokenProvider {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["t".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = OciTokenConfig {
            registry_url: crate::naming::RegistryHost::parse("localhost:5000").unwrap(),
            namespace: crate::naming::RepoNamespace::parse("rise-apps").unwrap(),
            service: "rise-registry".into(),
            issuer: "rise-broker".into(),
            signing_key_file: crate::config::ConfigPath::new(""),
            certificate_chain_file: crate::config::ConfigPath::new(""),
            ticket_ttl_seconds: 3600,
            token_ttl_seconds: 300,
        };
        OciTokenProvider::from_pem(
            config,
            key.serialize_pem().as_bytes(),
            cert.pem().as_bytes(),
        )
        .unwrap()
    }

    fn claims(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn a_ticket_becomes_a_token_for_its_own_repository_only() {
        let p = provider();
        let project = ProjectName::parse("my-app").unwrap();
        let creds = p.issue_ticket(&project, &Caller::from_subject("alice"), 1_000_000);
        assert_eq!(creds.image, "localhost:5000/rise-apps/my-app");
        assert_eq!(creds.username, USERNAME);
        let ticket = p.verify_ticket(creds.password.expose(), 1_000_010).unwrap();
        let token = p.registry_token(
            &ticket,
            [
                "repository:rise-apps/my-app:pull,push",
                "repository:rise-apps/other-app:pull,push",
            ],
            1_000_010,
        );
        let c = claims(&token.token);
        assert_eq!(c["iss"], "rise-broker");
        assert_eq!(c["aud"], "rise-registry", "a string, as distribution wants");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["exp"], 1_000_310);
        assert_eq!(c["nbf"], 1_000_010);
        assert_eq!(c["iat"], 1_000_010);
        assert_eq!(c["jti"].as_str().unwrap().len(), 32);
        assert_eq!(
            c["access"],
            serde_json::json!([{"type": "repository", "name": "rise-apps/my-app", "actions": ["pull", "push"]}])
        );
        assert_eq!(token.expires_in, 300);
    }

    #[test]
    fn a_token_never_outlives_its_ticket() {
        let p = provider();
        let project = ProjectName::parse("my-app").unwrap();
        let creds = p.issue_ticket(&project, &Caller::from_subject("alice"), 0);
        let ticket = p.verify_ticket(creds.password.expose(), 3590).unwrap();
        let token = p.registry_token(&ticket, ["repository:rise-apps/my-app:pull"], 3590);
        assert_eq!(token.expires_in, 10);
        assert_eq!(claims(&token.token)["exp"], 3600);
    }

    #[test]
    fn tickets_of_another_broker_key_are_refused() {
        let (a, b) = (provider(), provider());
        let project = ProjectName::parse("my-app").unwrap();
        let creds = a.issue_ticket(&project, &Caller::from_subject("alice"), 0);
        assert_eq!(
            b.verify_ticket(creds.password.expose(), 1),
            Err(TicketError::BadSignature)
        );
    }
}
