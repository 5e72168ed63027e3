//! Who is calling, and may they have credentials for this project?
//!
//! - [`jwt`]: token verification (pure, `now` passed in).
//! - [`jwks`]: fetching and refreshing an issuer's JWKS (at its `jwks_url`
//!   or found by OIDC discovery).
//! - [`authorize`]: the access rule, deny by default.
//!
//! The rules themselves ([`AccessRule`], [`claims`]'s workload rules) and
//! [`AccessKind`] are plain values in [`crate::access`], which config reads
//! them into; they are re-exported here, where callers look for them.

pub mod jwks;
pub mod jwt;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{AuthConfig, Config, DEFAULT_ISSUER};
use crate::naming::{Principal, ProjectName};

pub use crate::access::claims::{self, WorkloadRule};
pub use crate::access::{AccessKind, AccessRule};
pub use jwt::TokenError;

/// An authenticated caller, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The name of the issuer that signed the token ([`DEFAULT_ISSUER`]
    /// for the single-issuer keys).
    pub issuer: Arc<str>,
    pub subject: String,
    /// Only when present and not marked unverified by the issuer.
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// Whether the caller's `user:`/`group:` identities count: the
    /// issuer's `principals`. A CI job's `sub` is not a person.
    pub principals: bool,
    /// The token's string claims, for workload rules.
    pub claims: BTreeMap<String, String>,
    /// The [key fingerprint](crate::config::IssuerRef::key_fingerprint)
    /// of the issuer entry that verified the token: a ticket carries it.
    pub issuer_key: Arc<str>,
}

impl Caller {
    /// A caller of the single-issuer keys known only by its subject: no
    /// email, no groups, no claims.
    pub fn from_subject(subject: impl Into<String>) -> Self {
        Self {
            issuer: Arc::from(DEFAULT_ISSUER),
            subject: subject.into(),
            email: None,
            groups: Vec::new(),
            principals: true,
            claims: BTreeMap::new(),
            issuer_key: Arc::from(""),
        }
    }

    /// The same caller, as verified under the issuer key `key`.
    pub fn with_issuer_key(mut self, key: &str) -> Self {
        self.issuer_key = Arc::from(key);
        self
    }

    /// This caller with only the groups and claims `config` looks at for
    /// `project` (groups named in `auth.admins` or its access lists,
    /// claims named by its workload rules for this caller's issuer):
    /// everything [`authorize`] needs for that project, and nothing else.
    /// An oci-token ticket carries this, so the realm can apply the access
    /// rule again on every exchange without the caller's whole token.
    pub(crate) fn narrowed_to(&self, config: &Config, project: &ProjectName) -> Self {
        let rules: Vec<&AccessRule> = config
            .project(project)
            .map(|p| p.access.iter().chain(&p.pull_access).collect())
            .unwrap_or_default();
        let named_group = |g: &String| {
            let admin = config
                .auth
                .admins
                .iter()
                .any(|p| matches!(p, Principal::Group(x) if x == g));
            admin
                || rules
                    .iter()
                    .any(|r| matches!(r, AccessRule::Principal(Principal::Group(x)) if x == g))
        };
        // `sub` travels as the subject already.
        let named_claim = |name: &String| {
            name != "sub"
                && rules.iter().any(|r| match r {
                    AccessRule::Workload(w) => {
                        *w.issuer == *self.issuer && w.claim_names().any(|n| n == name)
                    }
                    AccessRule::Principal(_) => false,
                })
        };
        Self {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            email: self.email.clone(),
            groups: self
                .groups
                .iter()
                .filter(|g| named_group(g))
                .cloned()
                .collect(),
            principals: self.principals,
            claims: self
                .claims
                .iter()
                .filter(|(k, _)| named_claim(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            issuer_key: self.issuer_key.clone(),
        }
    }

    /// Whether `principal` is one of this caller's identities; the same as
    /// `identities().contains(principal)`, without building the list.
    pub fn has(&self, principal: &Principal) -> bool {
        if !self.principals {
            return false;
        }
        match principal {
            Principal::User(id) => *id == self.subject || self.email.as_deref() == Some(id),
            Principal::Group(g) => self.groups.contains(g),
        }
    }

    /// Whether `rule` admits this caller.
    pub fn admitted_by(&self, rule: &AccessRule) -> bool {
        match rule {
            AccessRule::Principal(p) => self.has(p),
            AccessRule::Workload(w) => w.matches(&self.issuer, |name| {
                self.claims.get(name).map(String::as_str)
            }),
        }
    }

    /// `user:<sub>`, `user:<email>` (when known) and `group:<g>` per group;
    /// none when the issuer's tokens yield no principals.
    pub(crate) fn identities(&self) -> Vec<Principal> {
        if !self.principals {
            return Vec::new();
        }
        let mut ids = vec![Principal::User(self.subject.clone())];
        if let Some(email) = &self.email {
            ids.push(Principal::User(email.clone()));
        }
        ids.extend(self.groups.iter().cloned().map(Principal::Group));
        ids
    }

    /// How the audit line names the caller: its identities, or for a
    /// workload `workload:<issuer>:<sub>`; other issuers' callers are
    /// prefixed with the issuer's name so equal subjects stay apart.
    pub(crate) fn audit_names(&self) -> Vec<String> {
        if !self.principals {
            return vec![format!("workload:{}:{}", self.issuer, self.subject)];
        }
        let names = self.identities().into_iter().map(|p| p.to_string());
        if *self.issuer == *DEFAULT_ISSUER {
            names.collect()
        } else {
            names.map(|n| format!("{}:{n}", self.issuer)).collect()
        }
    }

    /// The rate limiter's key: see [`limit_key`].
    pub(crate) fn limit_key(&self) -> std::borrow::Cow<'_, str> {
        limit_key(&self.issuer, &self.subject)
    }
}

/// The rate limiter's key for `subject` of the issuer named `issuer`: the
/// subject, within its issuer, so equal subjects of two issuers have
/// buckets of their own.
pub(crate) fn limit_key<'a>(issuer: &str, subject: &'a str) -> std::borrow::Cow<'a, str> {
    if issuer == DEFAULT_ISSUER {
        std::borrow::Cow::Borrowed(subject)
    } else {
        std::borrow::Cow::Owned(format!("{issuer}\u{0}{subject}"))
    }
}

/// Why a caller may use a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Through `auth.admins`.
    Admin(Principal),
    /// Through the project's `access` list (push and pull).
    Access(AccessRule),
    /// Through the project's `pull_access` list (pull only).
    PullAccess(AccessRule),
}

/// `admin via group:platform`, `access via workload:github{…}`: the audit
/// line's `grant`.
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin(p) => write!(f, "admin via {p}"),
            Self::Access(r) => write!(f, "access via {r}"),
            Self::PullAccess(r) => write!(f, "pull_access via {r}"),
        }
    }
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

/// The access rule: the project must exist, and the caller must be an
/// admin, be admitted by a rule of the project's `access`, or, for `pull`,
/// of its `pull_access`. Anything else is denied. Principals and claims
/// compare exactly (case included).
///
/// # Errors
/// The [`Denial`] reason.
pub(crate) fn authorize(
    config: &Config,
    caller: &Caller,
    project: &ProjectName,
    kind: AccessKind,
) -> Result<Grant, Denial> {
    let entry = config.project(project).ok_or(Denial::UnknownProject)?;
    if let Some(p) = config.auth.admins.iter().find(|p| caller.has(p)) {
        return Ok(Grant::Admin(p.clone()));
    }
    if let Some(rule) = entry.access.iter().find(|r| caller.admitted_by(r)) {
        return Ok(Grant::Access(rule.clone()));
    }
    if kind == AccessKind::Pull
        && let Some(rule) = entry.pull_access.iter().find(|r| caller.admitted_by(r))
    {
        return Ok(Grant::PullAccess(rule.clone()));
    }
    Err(Denial::NotPermitted)
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

/// One trusted issuer: its rules and, unless it only has a shared
/// secret, its keys.
struct IssuerVerifier {
    rules: jwt::Rules,
    jwks: Option<Arc<jwks::JwksSource>>,
}

impl IssuerVerifier {
    /// Verifies with this issuer's keys; an unknown key id triggers one
    /// rate-limited refresh and a second attempt.
    async fn verify(&self, token: &str, now: i64) -> Result<jwt::Verified, TokenError> {
        let keys = self.jwks.as_ref().map(|j| j.keys()).unwrap_or_default();
        match jwt::verify(&self.rules, &keys, token, now) {
            Err(TokenError::UnknownKey) => match &self.jwks {
                Some(source) if source.refresh_if_due().await => {
                    jwt::verify(&self.rules, &source.keys(), token, now)
                }
                _ => Err(TokenError::UnknownKey),
            },
            other => other,
        }
    }

    fn ready(&self) -> bool {
        self.rules.has_hs256() || self.jwks.as_ref().is_some_and(|j| !j.keys().is_empty())
    }
}

/// Verifies tokens from every trusted issuer: the single-issuer keys
/// (shared secret and/or JWKS) and each entry of `auth.issuers`.
pub struct Authenticator {
    issuers: Vec<IssuerVerifier>,
    /// Tokens that passed signature and claim checks, by their exact text.
    /// Clients reuse one token for many requests; this skips the signature
    /// and JSON work for repeats. A std lock, never held across `.await`.
    verified: Mutex<HashMap<String, (Arc<jwt::Verified>, Instant)>>,
}

impl Authenticator {
    /// Builds the authenticator. Every issuer's keys are fetched here, at
    /// once; a failure is logged and retried on demand, so a briefly
    /// unavailable identity provider does not stop serve from starting.
    pub async fn new(auth: &AuthConfig) -> anyhow::Result<Self> {
        Self::build(auth, None).await
    }

    /// The authenticator for a reloaded `auth`, keeping the keys (and
    /// their refresh schedule) of every issuer whose keys are where they
    /// were: only an issuer whose key location is new, or changed, is
    /// fetched. A change elsewhere in `auth` (an admin removed, a secret
    /// rotated, another issuer added) waits on no identity provider.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub async fn reloaded(&self, auth: &AuthConfig) -> anyhow::Result<Self> {
        Self::build(auth, Some(self)).await
    }

    async fn build(auth: &AuthConfig, running: Option<&Self>) -> anyhow::Result<Self> {
        let min_refresh = Duration::from_secs(auth.jwks_min_refresh_seconds.into());
        let mut issuers = Vec::new();
        let mut first_fetches = Vec::new();
        for issuer in auth.issuers() {
            let rules = jwt::Rules::for_issuer(issuer, auth.max_token_lifetime_seconds);
            let location = jwks::KeyLocation::of(issuer);
            let kept = running.and_then(|r| {
                r.issuers
                    .iter()
                    .filter_map(|v| v.jwks.as_ref())
                    .find(|j| Some(j.location()) == location.as_ref())
                    .cloned()
            });
            if let Some(source) = kept {
                source.set_min_refresh(min_refresh);
                issuers.push(IssuerVerifier {
                    rules,
                    jwks: Some(source),
                });
                continue;
            }
            let jwks = match location {
                Some(location) => {
                    let source = Arc::new(jwks::JwksSource::new(location, min_refresh)?);
                    let first = source.clone();
                    first_fetches.push(tokio::spawn(async move {
                        if let Err(e) = first.refresh().await {
                            tracing::error!(keys = %first.location(), error = %format!("{e:#}"), "could not fetch the JWKS at start-up; will retry when a token needs it");
                        }
                    }));
                    spawn_periodic_refresh(&source);
                    Some(source)
                }
                None => None,
            };
            issuers.push(IssuerVerifier { rules, jwks });
        }
        for fetch in first_fetches {
            // A panic in a fetch is a bug, not a reason to refuse to start.
            let _ = fetch.await;
        }
        Ok(Self {
            issuers,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies `token` at time `now` (Unix seconds), with the keys and
    /// rules of the issuer its `iss` names. A token of an issuer that is
    /// not configured is refused before any key is fetched.
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
        let verifier = self.verifier_for(token)?;
        let verified = Arc::new(verifier.verify(token, now).await?);
        self.remember(token, &verified);
        Ok(verified)
    }

    /// The issuer a token is for: the token's unverified `iss` picks the
    /// only issuer whose keys may verify it, so it is never tried against
    /// another issuer's keys, and a token of an issuer not configured
    /// costs no key fetch. The single-issuer keys without `issuer` accept
    /// tokens no listed issuer claims.
    fn verifier_for(&self, token: &str) -> Result<&IssuerVerifier, TokenError> {
        // One issuer that checks no `iss` takes every token as it is.
        if let [only] = self.issuers.as_slice()
            && only.rules.issuer().is_none()
        {
            return Ok(only);
        }
        let iss = jwt::unverified_issuer(token)?;
        self.issuers
            .iter()
            .find(|v| iss.as_deref().is_some_and(|i| v.rules.issuer() == Some(i)))
            .or_else(|| self.issuers.iter().find(|v| v.rules.issuer().is_none()))
            .ok_or(TokenError::Issuer)
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

    /// Ready when some tokens can be verified: any issuer with a shared
    /// secret or fetched keys.
    pub fn ready(&self) -> bool {
        self.issuers.iter().any(IssuerVerifier::ready)
    }

    /// Whether the issuer named `name` can verify tokens now.
    pub fn is_ready(&self, name: &str) -> bool {
        self.issuers
            .iter()
            .any(|v| v.rules.name() == name && v.ready())
    }

    /// Issuers whose keys could not be fetched yet, by name: for logs and
    /// reload messages.
    pub fn unready_issuers(&self) -> Vec<String> {
        self.issuers
            .iter()
            .filter(|v| !v.ready())
            .map(|v| v.rules.name().to_string())
            .collect()
    }
}

/// Refreshes `source` every [`JWKS_PERIODIC_REFRESH`] for as long as it is
/// in use, so removed keys go away even when no unknown key id shows up.
fn spawn_periodic_refresh(source: &Arc<jwks::JwksSource>) {
    let periodic = Arc::downgrade(source);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(JWKS_PERIODIC_REFRESH);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let Some(source) = periodic.upgrade() else {
                break;
            };
            if let Err(e) = source.refresh().await {
                tracing::warn!(keys = %source.location(), error = %format!("{e:#}"), "periodic JWKS refresh failed; keeping the old keys");
            }
        }
    });
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
            email: email.map(str::to_string),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Caller::from_subject(sub)
        }
    }

    /// A workload caller of issuer `issuer`, with these string claims.
    fn workload(issuer: &str, claims: &[(&str, &str)]) -> Caller {
        let claims: BTreeMap<String, String> = claims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Caller {
            issuer: Arc::from(issuer),
            principals: false,
            subject: claims.get("sub").cloned().unwrap_or_default(),
            claims,
            ..Caller::from_subject("")
        }
    }

    fn workload_config() -> Config {
        let text = r#"
registry: {type: oci-client-auth, registry_url: 'localhost:5000'}
projects:
  - name: my-app
    access:
      - group:team-a
      - issuer: github
        claims: {repository: acme/my-app}
        claims_like: {ref: "refs/heads/*"}
    pull_access:
      - user:deployer
      - issuer: gitlab
        claims: {project_path: acme/deploy, ref_protected: "true"}
  - {name: other}
auth:
  hs256_secret: 0123456789abcdef0123456789abcdef
  admins: ['group:platform']
  issuers:
    - {name: github, issuer: "https://token.actions.githubusercontent.com", audience: rise}
    - {name: gitlab, issuer: "https://gitlab.example.com", audience: [rise, rise-ci]}
"#;
        let sources = [Source {
            file: Arc::from("t.yaml"),
            text: text.into(),
        }];
        load_sources(&sources, &Arc::from("t"), &|_| None).unwrap()
    }

    #[test]
    fn workload_rules_grant_their_own_issuer_and_access_kind() {
        use AccessKind::{Pull, Push};
        let c = workload_config();
        let app = project("my-app");
        let main = workload(
            "github",
            &[
                ("sub", "repo:acme/my-app:ref:refs/heads/main"),
                ("repository", "acme/my-app"),
                ("ref", "refs/heads/main"),
            ],
        );
        for kind in [Push, Pull] {
            assert!(
                matches!(
                    authorize(&c, &main, &app, kind),
                    Ok(Grant::Access(AccessRule::Workload(_)))
                ),
                "{kind}"
            );
        }
        let pr = workload(
            "github",
            &[("repository", "acme/my-app"), ("ref", "refs/pull/7/merge")],
        );
        assert_eq!(authorize(&c, &pr, &app, Push), Err(Denial::NotPermitted));
        // The same claims from another issuer match nothing.
        let forged = workload(
            "gitlab",
            &[("repository", "acme/my-app"), ("ref", "refs/heads/main")],
        );
        assert_eq!(
            authorize(&c, &forged, &app, Pull),
            Err(Denial::NotPermitted)
        );
        // pull_access: pull only.
        let deploy = workload(
            "gitlab",
            &[("project_path", "acme/deploy"), ("ref_protected", "true")],
        );
        assert!(matches!(
            authorize(&c, &deploy, &app, Pull),
            Ok(Grant::PullAccess(_))
        ));
        assert_eq!(
            authorize(&c, &deploy, &app, Push),
            Err(Denial::NotPermitted)
        );
        let unprotected = workload(
            "gitlab",
            &[("project_path", "acme/deploy"), ("ref_protected", "false")],
        );
        assert_eq!(
            authorize(&c, &unprotected, &app, Pull),
            Err(Denial::NotPermitted)
        );
        let deployer = caller("deployer", None, &[]);
        assert!(authorize(&c, &deployer, &app, Pull).is_ok());
        assert_eq!(
            authorize(&c, &deployer, &app, Push),
            Err(Denial::NotPermitted)
        );
    }

    #[test]
    fn a_workload_token_is_no_person_or_group() {
        let c = workload_config();
        // A CI job whose sub happens to read like a user, with a groups
        // claim: its issuer yields no principals.
        let mut job = workload("github", &[("sub", "deployer")]);
        job.groups = vec!["platform".into()];
        assert!(!job.has(&Principal::User("deployer".into())));
        assert_eq!(
            authorize(&c, &job, &project("my-app"), AccessKind::Pull),
            Err(Denial::NotPermitted)
        );
        assert!(job.identities().is_empty());
        assert_eq!(job.audit_names(), ["workload:github:deployer"]);
        assert_ne!(job.limit_key(), caller("deployer", None, &[]).limit_key());
    }

    #[test]
    fn narrowing_keeps_what_the_projects_rules_read() {
        let c = workload_config();
        let app = project("my-app");
        let job = workload(
            "github",
            &[
                ("sub", "repo:acme/my-app:ref:refs/heads/main"),
                ("repository", "acme/my-app"),
                ("ref", "refs/heads/main"),
                ("actor", "octocat"),
                ("project_path", "acme/deploy"),
            ],
        );
        let narrow = job.narrowed_to(&c, &app);
        let kept: Vec<&str> = narrow.claims.keys().map(String::as_str).collect();
        // `project_path` is read by a gitlab rule only.
        assert_eq!(kept, ["ref", "repository"]);
        assert_eq!(
            authorize(&c, &narrow, &app, AccessKind::Push),
            authorize(&c, &job, &app, AccessKind::Push)
        );
    }

    fn project(s: &str) -> ProjectName {
        ProjectName::parse(s).unwrap()
    }

    #[test]
    fn access_by_email_group_or_admin_and_nothing_else() {
        let c = config();
        let alice = caller("u-1", Some("alice@example.com"), &[]);
        assert_eq!(
            authorize(&c, &alice, &project("my-app"), AccessKind::Push),
            Ok(Grant::Access(AccessRule::Principal(Principal::User(
                "alice@example.com".into()
            ))))
        );
        assert_eq!(
            authorize(&c, &alice, &project("other"), AccessKind::Push),
            Err(Denial::NotPermitted)
        );
        let team = caller("u-2", None, &["team-a"]);
        assert!(authorize(&c, &team, &project("my-app"), AccessKind::Push).is_ok());
        let admin = caller("u-3", None, &["platform"]);
        assert!(matches!(
            authorize(&c, &admin, &project("other"), AccessKind::Push),
            Ok(Grant::Admin(_))
        ));
        assert_eq!(
            authorize(&c, &admin, &project("nope"), AccessKind::Push),
            Err(Denial::UnknownProject)
        );
        let near_miss = caller("u-4", None, &["Team-A", "team-a ", "team-a*"]);
        assert_eq!(
            authorize(&c, &near_miss, &project("my-app"), AccessKind::Push),
            Err(Denial::NotPermitted),
            "groups match exactly"
        );
        assert_eq!(
            authorize(
                &c,
                &caller("x", Some("ALICE@example.com"), &[]),
                &project("my-app"),
                AccessKind::Push,
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
