//! Who is calling, and may they have credentials for this project?
//!
//! - [`jwt`]: token verification (pure, `now` passed in).
//! - [`jwks`]: fetching and refreshing the JWKS behind `auth.jwks_url`.
//! - [`authorize`]: the access rule, deny by default.

pub mod jwks;
pub mod jwt;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{AuthConfig, Config};
use crate::naming::{Principal, ProjectName};

pub use jwt::TokenError;

/// An authenticated caller, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    /// Only when present and not marked unverified by the issuer.
    pub email: Option<String>,
    pub groups: Vec<String>,
}

impl Caller {
    /// A caller known only by its subject: no email, no groups.
    pub fn from_subject(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            email: None,
            groups: Vec::new(),
        }
    }

    /// This caller with only the groups `config` names for `project`
    /// (in `auth.admins` or the project's `access`): everything
    /// [`authorize`] looks at for that project, and nothing else. An
    /// oci-token ticket carries this, so the realm can apply the access
    /// rule again on every exchange without the caller's whole group list.
    pub(crate) fn narrowed_to(&self, config: &Config, project: &ProjectName) -> Self {
        let named = |g: &String| {
            let access = config.project(project).map(|p| p.access.as_slice());
            config
                .auth
                .admins
                .iter()
                .chain(access.unwrap_or_default())
                .any(|p| matches!(p, Principal::Group(x) if x == g))
        };
        Self {
            subject: self.subject.clone(),
            email: self.email.clone(),
            groups: self.groups.iter().filter(|g| named(g)).cloned().collect(),
        }
    }

    /// Whether `principal` is one of this caller's identities; the same as
    /// `identities().contains(principal)`, without building the list.
    pub fn has(&self, principal: &Principal) -> bool {
        match principal {
            Principal::User(id) => *id == self.subject || self.email.as_deref() == Some(id),
            Principal::Group(g) => self.groups.contains(g),
        }
    }

    /// `user:<sub>`, `user:<email>` (when known) and `group:<g>` per group.
    pub(crate) fn identities(&self) -> Vec<Principal> {
        let mut ids = vec![Principal::User(self.subject.clone())];
        if let Some(email) = &self.email {
            ids.push(Principal::User(email.clone()));
        }
        ids.extend(self.groups.iter().cloned().map(Principal::Group));
        ids
    }
}

/// Why a caller may use a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Through `auth.admins`.
    Admin(Principal),
    /// Through the project's `access` list.
    Access(Principal),
}

/// Why not. Both answer 404 with the same body, so callers cannot tell
/// which projects exist; the audit log says which it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    UnknownProject,
    NotPermitted,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownProject => "unknown_project",
            Self::NotPermitted => "not_permitted",
        }
    }
}

/// The access rule: the project must exist, and one of the caller's
/// identities must be an admin or in the project's `access` list. Anything
/// else is denied. Principals compare exactly (case included).
///
/// # Errors
/// The [`Denial`] reason.
pub(crate) fn authorize(
    config: &Config,
    caller: &Caller,
    project: &ProjectName,
) -> Result<Grant, Denial> {
    let entry = config.project(project).ok_or(Denial::UnknownProject)?;
    if let Some(p) = config.auth.admins.iter().find(|p| caller.has(p)) {
        return Ok(Grant::Admin(p.clone()));
    }
    entry
        .access
        .iter()
        .find(|p| caller.has(p))
        .map(|p| Grant::Access(p.clone()))
        .ok_or(Denial::NotPermitted)
}

/// How long a verified token is remembered (its lifetime is still checked
/// on every use). Bounds how long a key removed from the JWKS keeps working
/// for tokens already seen.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Remembered tokens at most; the memory is simply cleared when full.
const VERIFIED_MAX: usize = 4096;
/// The JWKS is refreshed on this period too, so removed keys go away even
/// when no unknown key id ever shows up.
const JWKS_PERIODIC_REFRESH: Duration = Duration::from_secs(600);

/// Verifies tokens with the configured shared secret and/or JWKS.
pub struct Authenticator {
    rules: jwt::Rules,
    jwks: Option<Arc<jwks::JwksSource>>,
    /// Tokens that passed signature and claim checks, by their exact text.
    /// Clients reuse one token for many requests; this skips the signature
    /// and JSON work for repeats. A std lock, never held across `.await`.
    verified: Mutex<HashMap<String, (Arc<jwt::Verified>, Instant)>>,
}

impl Authenticator {
    /// Builds the authenticator. With `jwks_url`, the keys are fetched once
    /// here; a failure is logged and retried on demand, so a briefly
    /// unavailable identity provider does not stop serve from starting.
    pub async fn new(auth: &AuthConfig) -> anyhow::Result<Self> {
        let min_refresh = Duration::from_secs(auth.jwks_min_refresh_seconds.into());
        let jwks = match &auth.jwks_url {
            Some(url) => {
                let source = Arc::new(jwks::JwksSource::new(url.clone(), min_refresh)?);
                if let Err(e) = source.refresh().await {
                    tracing::error!(url = %url, error = %format!("{e:#}"), "could not fetch the JWKS at start-up; will retry when a token needs it");
                }
                let periodic = Arc::downgrade(&source);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(JWKS_PERIODIC_REFRESH);
                    tick.tick().await; // the first tick is immediate
                    loop {
                        tick.tick().await;
                        let Some(source) = periodic.upgrade() else {
                            break;
                        };
                        if let Err(e) = source.refresh().await {
                            tracing::warn!(error = %format!("{e:#}"), "periodic JWKS refresh failed; keeping the old keys");
                        }
                    }
                });
                Some(source)
            }
            None => None,
        };
        Ok(Self {
            rules: jwt::Rules::new(auth),
            jwks,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies `token` at time `now` (Unix seconds). An unknown key id
    /// triggers one rate-limited JWKS refresh and a second attempt.
    ///
    /// # Errors
    /// Why the token was refused.
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<jwt::Verified>, TokenError> {
        // Size first, so no oversized string is hashed or stored.
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        if let Some(seen) = self.remembered(token) {
            seen.lifetime.check(now)?;
            return Ok(seen);
        }
        let keys = self.jwks.as_ref().map(|j| j.keys()).unwrap_or_default();
        let verified = match jwt::verify(&self.rules, &keys, token, now) {
            Err(TokenError::UnknownKey) => match &self.jwks {
                Some(source) if source.refresh_if_due().await => {
                    jwt::verify(&self.rules, &source.keys(), token, now)
                }
                _ => Err(TokenError::UnknownKey),
            },
            other => other,
        }?;
        let verified = Arc::new(verified);
        self.remember(token, &verified);
        Ok(verified)
    }

    fn remembered(&self, token: &str) -> Option<Arc<jwt::Verified>> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified
            .get(token)
            .filter(|(_, at)| at.elapsed() < VERIFIED_TTL)
            .map(|(v, _)| v.clone())
    }

    fn remember(&self, token: &str, verified: &Arc<jwt::Verified>) {
        let mut memory = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if memory.len() >= VERIFIED_MAX {
            memory.clear();
        }
        memory.insert(token.to_string(), (verified.clone(), Instant::now()));
    }

    /// Ready when tokens can be verified: a shared secret, or JWKS keys.
    pub fn ready(&self) -> bool {
        self.rules.has_hs256() || self.jwks.as_ref().is_some_and(|j| !j.keys().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, load_sources};
    use std::sync::Arc;

    fn config() -> Config {
        let text = "registry: {type: oci-client-auth, registry_url: 'localhost:5000'}\n\
                    projects:\n  - {name: my-app, access: ['user:alice@example.com', 'group:team-a']}\n  - {name: other}\n\
                    auth: {hs256_secret: 0123456789abcdef0123456789abcdef, admins: ['group:platform']}\n";
        let sources = [Source {
            file: Arc::from("t.yaml"),
            text: text.into(),
        }];
        load_sources(&sources, &Arc::from("t"), &|_| None).unwrap()
    }

    fn caller(sub: &str, email: Option<&str>, groups: &[&str]) -> Caller {
        Caller {
            subject: sub.into(),
            email: email.map(str::to_string),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn project(s: &str) -> ProjectName {
        ProjectName::parse(s).unwrap()
    }

    #[test]
    fn access_by_email_group_or_admin_and_nothing_else() {
        let c = config();
        let alice = caller("u-1", Some("alice@example.com"), &[]);
        assert_eq!(
            authorize(&c, &alice, &project("my-app")),
            Ok(Grant::Access(Principal::User("alice@example.com".into())))
        );
        assert_eq!(
            authorize(&c, &alice, &project("other")),
            Err(Denial::NotPermitted)
        );
        let team = caller("u-2", None, &["team-a"]);
        assert!(authorize(&c, &team, &project("my-app")).is_ok());
        let admin = caller("u-3", None, &["platform"]);
        assert!(matches!(
            authorize(&c, &admin, &project("other")),
            Ok(Grant::Admin(_))
        ));
        assert_eq!(
            authorize(&c, &admin, &project("nope")),
            Err(Denial::UnknownProject)
        );
        let near_miss = caller("u-4", None, &["Team-A", "team-a ", "team-a*"]);
        assert_eq!(
            authorize(&c, &near_miss, &project("my-app")),
            Err(Denial::NotPermitted),
            "groups match exactly"
        );
        assert_eq!(
            authorize(
                &c,
                &caller("x", Some("ALICE@example.com"), &[]),
                &project("my-app")
            ),
            Err(Denial::NotPermitted)
        );
    }

    #[tokio::test]
    async fn remembered_tokens_are_still_checked_for_expiry() {
        let c = config();
        let auth = Authenticator::new(&c.auth).await.unwrap();
        let now = 1_800_000_000;
        let claims = serde_json::json!({"sub": "u", "exp": now + 60});
        let key =
            jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
        assert_eq!(
            auth.authenticate(&token, now).await.unwrap().caller.subject,
            "u"
        );
        assert!(
            auth.remembered(&token).is_some(),
            "a verified token is remembered"
        );
        assert_eq!(
            auth.authenticate(&token, now + 60 + jwt::LEEWAY_SECONDS)
                .await,
            Err(TokenError::Expired)
        );
        // Oversized input is refused before it is looked up or stored.
        let huge = "a".repeat(jwt::MAX_TOKEN_BYTES + 1);
        assert_eq!(
            auth.authenticate(&huge, now).await,
            Err(TokenError::TooLarge)
        );
        assert!(auth.remembered(&huge).is_none());
    }

    #[test]
    fn identities_are_user_and_group_principals() {
        let c = caller("s", Some("e@x"), &["g"]);
        for id in c.identities() {
            assert!(c.has(&id), "{id}");
        }
        assert!(!c.has(&Principal::User("g".into())) && !c.has(&Principal::Group("s".into())));
        let ids = c.identities();
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(ids, ["user:s", "user:e@x", "group:g"]);
    }
}
