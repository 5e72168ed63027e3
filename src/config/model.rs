//! The typed, validated configuration.
//!
//! Holding a [`Config`] means every rule of docs/configuration.md held when it
//! was loaded: names are valid, ARNs belong to the account, projects are
//! unique. `Serialize` renders the effective configuration for
//! `rise-registry config`; secrets render as `[REDACTED]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

pub use crate::access::AccessRule;
use crate::naming::{
    AccountId, K8sName, OidcProviderArn, Principal, PrincipalArn, ProjectName, Region,
    RegistryHost, RepoNamespace, RepoPrefix, RoleArn,
};
use crate::repository_settings::Values;
use crate::roles::{IrsaVars, TemplateVars};
use crate::secret::Secret;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub registry: RegistryConfig,
    pub projects: Vec<Project>,
    pub auth: AuthConfig,
    pub server: ServerConfig,
    /// Where projects created at runtime are kept (`store.url`); `None`:
    /// the projects of config are all there is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
    /// The controller inside serve (docs/projects.md).
    pub controller: ControllerConfig,
    /// Where each project is in `projects`, for [`Config::project`]: with
    /// thousands of projects from the store, every credential request
    /// looks one up. Rebuilt by [`Config::index_projects`].
    #[serde(skip)]
    pub(crate) project_index: std::collections::HashMap<ProjectName, usize>,
}

impl Config {
    pub fn project(&self, name: &ProjectName) -> Option<&Project> {
        // The index is whole only when made after the last change to
        // `projects`; otherwise (a `Config` changed by hand) it is read
        // through as a hint and the list is scanned.
        if self.project_index.len() == self.projects.len() {
            let found = self
                .project_index
                .get(name)
                .and_then(|&i| self.projects.get(i));
            return found.filter(|p| &p.name == name);
        }
        self.projects.iter().find(|p| &p.name == name)
    }

    /// Builds the index of `projects` again, after changing them.
    pub fn index_projects(&mut self) {
        self.project_index = self
            .projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
    }
}

/// Which registry serve hands out credentials for, and plan/apply manage.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RegistryConfig {
    // Boxed: these variants are much larger than the other, and the config
    // is built once.
    Ecr(Box<EcrConfig>),
    OciClientAuth(OciClientAuthConfig),
    OciToken(Box<OciTokenConfig>),
}

impl RegistryConfig {
    /// The repository a project's images go to, as the registry names it:
    /// `{repo_prefix}{project}` for ECR, `{namespace}/{project}` otherwise
    /// (what the projects API shows).
    pub fn repository_name(&self, project: &ProjectName) -> String {
        match self {
            Self::Ecr(ecr) => ecr
                .repo_prefix
                .repository_name(project)
                .unwrap_or_else(|_| project.to_string()),
            Self::OciClientAuth(oci) => match &oci.namespace {
                Some(ns) => format!("{ns}/{project}"),
                None => project.to_string(),
            },
            Self::OciToken(oci) => format!("{}/{project}", oci.namespace),
        }
    }

    /// The `type:` value, as written in config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Ecr(_) => "ecr",
            Self::OciClientAuth(_) => "oci-client-auth",
            Self::OciToken(_) => "oci-token",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EcrConfig {
    pub region: Region,
    pub account_id: AccountId,
    pub repo_prefix: RepoPrefix,
    /// The controller role: manages repositories and assumes the push role.
    pub role_arn: RoleArn,
    /// The push role: assumed with a per-project session policy.
    pub push_role_arn: RoleArn,
    pub auto_remove: bool,
    /// Repositories an unattended run (`apply --auto-approve`, the
    /// controller) may delete at once; more is refused whole, since a
    /// values mistake that empties the project list would otherwise delete
    /// every repository and its images. `apply --allow-destroy` lifts it.
    pub max_deletions: u32,
    /// Whether plan/apply manage the two roles by default (`false` when
    /// Terraform's `modules/rise-aws` owns them): the default `--scope`.
    pub manage_roles: bool,
    pub endpoint_url: Option<String>,
    /// The managed repository settings (`image_tag_mutability`,
    /// `scan_on_push`, `max_image_count`, …), written under their config
    /// names.
    #[serde(
        flatten,
        serialize_with = "crate::repository_settings::serialize_config"
    )]
    pub repository: Values,
    pub tags: BTreeMap<String, String>,
    pub irsa: Option<IrsaConfig>,
    pub trusted_principals: Vec<PrincipalArn>,
    /// Lifetime asked of STS for push credentials; 3600 is the most AWS
    /// allows when a role assumes another role (role chaining).
    pub session_duration_seconds: u32,
    /// The AWS request quotas serve paces its issuances to.
    pub aws_rates: AwsRates,
}

/// Request rates serve spends AWS calls at, per account and region: AWS's
/// documented quotas by default. Several replicas share one account's
/// quota without seeing each other; throttling answers lower the rate
/// each replica uses, so these are upper bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AwsRates {
    /// ECR `GetAuthorizationToken`: 20 a second, a bucket of 200 (the ECR
    /// user guide's service quotas).
    pub get_authorization_token: Rate,
    /// STS `AssumeRole`: 600 a second (the IAM user guide's STS request
    /// quota).
    pub assume_role: Rate,
}

/// A token bucket: `per_second` refilled, `burst` at most.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for AwsRates {
    fn default() -> Self {
        Self {
            get_authorization_token: Rate {
                per_second: 20,
                burst: 200,
            },
            assume_role: Rate {
                per_second: 600,
                burst: 600,
            },
        }
    }
}

impl EcrConfig {
    /// The ARN partition, taken from the role ARNs (validated to agree with
    /// the region).
    pub fn partition(&self) -> &str {
        self.role_arn.partition()
    }
}

/// Defined here rather than beside [`TemplateVars`]: [`crate::roles`] sits
/// below config (config renders the role documents to check their sizes),
/// so it takes plain strings and knows nothing of [`EcrConfig`].
impl TemplateVars {
    /// The template variables of these ECR settings.
    pub fn from_config(ecr: &EcrConfig) -> Self {
        let mut push_trusted_principals = vec![ecr.role_arn.to_string()];
        push_trusted_principals.extend(ecr.trusted_principals.iter().map(ToString::to_string));
        Self {
            partition: ecr.partition().to_string(),
            region: ecr.region.to_string(),
            account_id: ecr.account_id.to_string(),
            repo_prefix: ecr.repo_prefix.to_string(),
            auto_remove: ecr.auto_remove,
            push_role_arn: ecr.push_role_arn.to_string(),
            irsa: ecr.irsa.as_ref().map(|i| IrsaVars {
                oidc_provider_arn: i.oidc_provider_arn.to_string(),
                provider: i.provider().to_string(),
                namespace: i.namespace.to_string(),
                service_account: i.service_account.to_string(),
            }),
            trusted_principals: ecr
                .trusted_principals
                .iter()
                .map(ToString::to_string)
                .collect(),
            push_trusted_principals,
        }
    }
}

/// EKS IRSA: the controller role trusts a Kubernetes service account.
#[derive(Debug, Clone, Serialize)]
pub struct IrsaConfig {
    pub oidc_provider_arn: OidcProviderArn,
    pub namespace: K8sName,
    pub service_account: K8sName,
}

impl IrsaConfig {
    /// The provider's host and path (`oidc.eks.…/id/…`): the prefix of the
    /// `:sub` and `:aud` condition keys in the trust policy.
    pub fn provider(&self) -> &str {
        self.oidc_provider_arn.provider()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OciClientAuthConfig {
    /// Host and optional port clients push to, such as `localhost:5000`.
    pub registry_url: RegistryHost,
    /// Path between host and project; `None` puts projects at the top.
    pub namespace: Option<RepoNamespace>,
}

/// A distribution registry that trusts tokens from serve's `/registry/token`.
#[derive(Debug, Clone, Serialize)]
pub struct OciTokenConfig {
    /// Host and optional port clients push to.
    pub registry_url: RegistryHost,
    /// Projects live at `{namespace}/{project}`.
    pub namespace: RepoNamespace,
    /// The registry's `auth.token.service`: the `aud` of registry tokens.
    pub service: String,
    /// The registry's `auth.token.issuer`: the `iss` of registry tokens.
    pub issuer: String,
    /// PEM private key, EC P-256 (ES256) or RSA (RS256).
    pub signing_key_file: ConfigPath,
    /// PEM certificates, leaf (certifying the key) first.
    pub certificate_chain_file: ConfigPath,
    /// Lifetime of the password `/registry/credentials` hands out.
    pub ticket_ttl_seconds: u32,
    /// Lifetime of each registry token (never beyond its ticket's).
    pub token_ttl_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub name: ProjectName,
    /// Who may get push (and pull) credentials for this project, besides
    /// `auth.admins`.
    pub access: Vec<AccessRule>,
    /// Who may get pull-only credentials for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull_access: Vec<AccessRule>,
}

/// How serve authenticates callers. The single-issuer keys (`issuer`,
/// `audience`, `hs256_secret`, `jwks_url`, `groups_claim`,
/// `allow_unverified_email`) describe the issuer named
/// [`DEFAULT_ISSUER`]; `issuers` lists more ([`AuthConfig::issuers`] gives
/// them all).
#[derive(Debug, Clone, Serialize)]
pub struct AuthConfig {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub hs256_secret: Option<Secret<String>>,
    pub jwks_url: Option<String>,
    pub groups_claim: String,
    pub admins: Vec<Principal>,
    /// Who may call the projects API besides the admins: principals or
    /// workload rules (the platform backend's own identity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub project_managers: Vec<AccessRule>,
    /// A token with an unknown key id refreshes the JWKS at most this often.
    pub jwks_min_refresh_seconds: u32,
    /// Count a token's `email` as an identity even without
    /// `email_verified: true` (for identity providers that never send it).
    pub allow_unverified_email: bool,
    /// A token whose `exp` is further away than this is refused, whatever
    /// signed it: a leaked token must not live for years.
    pub max_token_lifetime_seconds: u32,
    /// More trusted issuers, each with its own keys and rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerConfig>,
}

/// The name the single-issuer keys of `auth` go by, in workload rules and
/// logs.
pub const DEFAULT_ISSUER: &str = "default";

impl AuthConfig {
    /// Every trusted issuer: the single-issuer keys first (when they give
    /// a key source), then `auth.issuers` in order.
    pub fn issuers(&self) -> impl Iterator<Item = IssuerRef<'_>> {
        let single = (self.hs256_secret.is_some() || self.jwks_url.is_some())
            .then_some(IssuerRef::Single(self));
        single
            .into_iter()
            .chain(self.issuers.iter().map(IssuerRef::Listed))
    }

    /// The trusted issuer named `name`, if one is configured.
    pub fn issuer_named(&self, name: &str) -> Option<IssuerRef<'_>> {
        self.issuers().find(|i| i.name() == name)
    }
}

/// One trusted issuer, however it was written.
#[derive(Debug, Clone, Copy)]
pub enum IssuerRef<'a> {
    /// The single-issuer keys of `auth`.
    Single(&'a AuthConfig),
    /// An entry of `auth.issuers`.
    Listed(&'a IssuerConfig),
}

impl<'a> IssuerRef<'a> {
    pub fn name(&self) -> &'a str {
        match self {
            Self::Single(_) => DEFAULT_ISSUER,
            Self::Listed(i) => &i.name,
        }
    }

    /// Whether its tokens yield `user:`/`group:` identities: always for the
    /// single-issuer keys, as `principals` says for a listed issuer.
    pub fn principals(&self) -> bool {
        match self {
            Self::Single(_) => true,
            Self::Listed(i) => i.principals,
        }
    }

    /// What identifies the issuer and its keys: its `iss` and where its
    /// keys come from (the shared secret itself, a JWKS URL, or discovery
    /// at the issuer URL), hashed. A ticket carries it from the token it
    /// was issued for, and is refused once the issuer's entry says
    /// otherwise: rotating `hs256_secret` or pointing an issuer elsewhere
    /// ends the tickets minted under the old one.
    pub fn key_fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut part = |label: &str, value: &[u8]| {
            // Length-prefixed, so no two parts can run into each other.
            h.update(label.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        match self {
            Self::Single(auth) => {
                part("single", b"");
                part("iss", auth.issuer.as_deref().unwrap_or("").as_bytes());
                let secret = auth.hs256_secret.as_ref();
                part("hs256", secret.map_or(&b""[..], |s| s.expose().as_bytes()));
                part("jwks", auth.jwks_url.as_deref().unwrap_or("").as_bytes());
            }
            Self::Listed(i) => {
                part("listed", i.name.as_bytes());
                part("iss", i.issuer.as_bytes());
                part(
                    "jwks",
                    i.jwks_url.as_deref().unwrap_or("discovery").as_bytes(),
                );
            }
        }
        let digest = h.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether it signs only for its owner's pipelines: always for the
    /// single-issuer keys (the platform's own issuer or secret), as
    /// `private` says for a listed issuer.
    pub fn private(&self) -> bool {
        match self {
            Self::Single(_) => true,
            Self::Listed(i) => i.private,
        }
    }
}

/// An entry of `auth.issuers`: an OIDC issuer whose tokens serve accepts,
/// such as a CI system's (GitHub Actions, GitLab CI).
#[derive(Debug, Clone, Serialize)]
pub struct IssuerConfig {
    /// How workload rules name it.
    pub name: String,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Accepted `aud` values (any of).
    pub audience: Vec<String>,
    /// Where its keys are; `None` finds them by OIDC discovery at
    /// `{issuer}/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u32,
    /// Whether its tokens also yield `user:`/`group:` identities; off by
    /// default, so only workload rules naming this issuer match its tokens.
    pub principals: bool,
    pub groups_claim: String,
    /// Whether only its owner's pipelines get its tokens (an IdP or a CI
    /// server of one's own): then a workload rule need not pin a tenant
    /// claim. Off by default: GitHub Actions and gitlab.com sign for
    /// everyone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

/// A signature algorithm an issuer may use (asymmetric only: a shared
/// secret belongs to the single-issuer keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JwtAlgorithm {
    RS256,
    ES256,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// A second, plain-HTTP listener for `/metrics`, `/healthz` and
    /// `/readyz` only; when set, `/metrics` is no longer served on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub tls: Option<TlsConfig>,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: u32,
    /// A client must send its request headers within this time.
    pub header_read_timeout_seconds: u32,
    /// After SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_grace_seconds: u32,
    /// A response whose write makes no progress for this long (a client
    /// that does not read) closes its connection.
    pub write_timeout_seconds: u32,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout_seconds: u32,
    /// After this many requests a connection is closed (the last answer
    /// says `Connection: close`).
    pub max_requests_per_connection: u32,
    /// A connection older than this is closed once its request in flight
    /// is answered.
    pub max_connection_age_seconds: u32,
    /// Whether credential counters in `/metrics` carry the project's name.
    /// Off by default: whoever can read `/metrics` (no token is asked)
    /// would otherwise learn which projects exist and how busy each is.
    pub metrics_project_labels: bool,
    pub credential_cache: CacheConfig,
    pub rate_limit: RateLimitConfig,
}

impl ServerConfig {
    /// The token realm serve answers on when none is given: its own listen
    /// address (loopback for an unspecified one), scheme by `tls`.
    pub fn default_realm(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{scheme}://{addr}/registry/token")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheConfig {
    /// Cached credentials are handed out only while they have at least this
    /// much lifetime left, so a client always gets time to push.
    pub min_remaining_seconds: u32,
    /// How long a request with nothing cached may wait for its turn at the
    /// provider (AWS's quota); one whose turn would come later gets 503
    /// with `Retry-After` at once.
    pub max_wait_seconds: u32,
    /// Credentials used recently are renewed in the background this long
    /// before they fall below `min_remaining_seconds`; 0 renews nothing.
    pub renew_ahead_seconds: u32,
    /// What "used recently" means for renewal: handed out within this
    /// long.
    pub renew_used_within_seconds: u32,
}

/// A token bucket per caller: `burst` requests at once, refilled at
/// `requests_per_minute`.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitConfig {
    pub requests_per_minute: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    pub cert_file: ConfigPath,
    pub key_file: ConfigPath,
}

/// A file named in config. A relative path is resolved against the config
/// directory when config is read, so it means the same file wherever the
/// tool runs; the key and the place that named it are kept, so a problem
/// with the file itself is reported there, like any other config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    /// The file to open.
    pub path: std::path::PathBuf,
    /// The key path that named it, e.g. `server.tls.cert_file`.
    pub key: String,
    /// Where that key was set.
    pub origin: super::Origin,
}

impl ConfigPath {
    /// A path not read from a config file (tests, generated config).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            path: path.into(),
            key: String::new(),
            origin: super::Origin {
                file: std::sync::Arc::from(""),
                line: None,
            },
        }
    }
}

impl ConfigPath {
    /// A problem with the file, reported at the key that named it.
    pub fn problem(&self, message: impl std::fmt::Display) -> super::ConfigError {
        super::ConfigError::new(
            self.origin.clone(),
            self.key.clone(),
            format!("`{}`: {message}", self.path.display()),
        )
    }

    /// The file's bytes.
    ///
    /// # Errors
    /// A problem at the key when the file cannot be read, with a hint on
    /// where relative paths lead when it does not exist.
    pub fn read(&self) -> Result<Vec<u8>, super::ConfigError> {
        std::fs::read(&self.path).map_err(|e| {
            let problem = self.problem(format!("cannot be read: {e}"));
            if e.kind() == std::io::ErrorKind::NotFound {
                problem.with_hint(
                    "a relative path in config is resolved against the config directory, not the working directory",
                )
            } else {
                problem
            }
        })
    }
}

impl std::fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.path.display().fmt(f)
    }
}

/// Written as the resolved path: what `config` prints is the file serve
/// will open.
impl Serialize for ConfigPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.path.display())
    }
}

/// `store`: the database that holds the projects created through the
/// projects API (docs/projects.md).
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    pub url: StoreUrl,
}

/// `store.url`: an embedded SQLite file (one process) or a PostgreSQL
/// server (several replicas). A PostgreSQL URL carries a password, so it is
/// a secret: never printed, redacted in `config`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreUrl {
    /// The file, resolved against the config directory.
    Sqlite(std::path::PathBuf),
    Postgres(Secret<String>),
}

impl StoreUrl {
    /// What a log line or an error may say of the store: the kind, and
    /// the file for SQLite; never a PostgreSQL URL.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite file {}", path.display()),
            Self::Postgres(_) => "PostgreSQL".to_string(),
        }
    }
}

/// `controller`: serve reconciles the repositories of every project itself,
/// on one leader among its replicas (docs/projects.md).
#[derive(Debug, Clone, Serialize)]
pub struct ControllerConfig {
    pub enabled: bool,
    /// A full pass (AWS read again, drift repaired) at least this often;
    /// changes are reconciled as they come.
    pub interval_seconds: u32,
    /// How long the leader's lease lasts without renewal: a leader that
    /// dies is replaced within this.
    pub lease_seconds: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_seconds: 60,
            lease_seconds: 15,
        }
    }
}
