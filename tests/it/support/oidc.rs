//! A local OpenID Connect issuer on loopback HTTP, standing in for the token
//! services of GitHub Actions and GitLab CI: serve finds its keys the way
//! it finds theirs, through `{issuer}/.well-known/openid-configuration` and
//! the `jwks_uri` named there.
//!
//! [`OidcIssuer`] holds an RS256 and an ES256 key, signs tokens with either,
//! rotates keys while serve runs, and counts the requests it gets, so a test
//! can show that a token naming another issuer cost this one no fetch.
//! [`GithubWorkflow`] and [`GitlabJob`] build the claim sets those CI
//! systems document, with their types: every custom claim a string (ids,
//! `ref_protected` as `"true"`/`"false"`), except GitLab's numeric
//! `runner_id`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::http::{LoopbackServer, spawn_server};
use super::jwt::{TestKey, jwks, now};

/// Where the issuer publishes its keys. Deliberately not a path under
/// `/.well-known/`: a client that guesses instead of reading `jwks_uri`
/// from the discovery document finds nothing. (GitLab serves its keys here.)
pub const JWKS_PATH: &str = "/oauth/discovery/keys";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// An OIDC issuer at `http://127.0.0.1:PORT`; it stops when dropped.
pub struct OidcIssuer {
    /// The issuer identifier, which is also its base URL: the exact `iss`.
    pub url: String,
    state: Arc<State>,
    _server: LoopbackServer,
}

/// What the request handler and the test share. std locks: never held
/// across an `.await`.
#[derive(Default)]
struct State {
    /// Set once the listener has its port, before any request can arrive.
    url: OnceLock<String>,
    /// Every key the issuer ever held, with whether the JWKS publishes it:
    /// a retired key can still sign, as a leaked or stale one would.
    keys: Mutex<Vec<(Arc<TestKey>, bool)>>,
    discovery: AtomicUsize,
    jwks: AtomicUsize,
    /// Requests for any other path.
    other: AtomicUsize,
    /// While set, every answer is an HTML error page, as a provider behind
    /// a failing load balancer gives.
    broken: std::sync::atomic::AtomicBool,
}

impl OidcIssuer {
    /// Starts an issuer holding `{name}-rs256-1` and `{name}-es256-1`. Key
    /// ids differ between issuers, so a verifier that pooled every
    /// issuer's keys would accept a key for the wrong issuer, visibly.
    pub fn start(name: &str) -> Self {
        let state = Arc::new(State::default());
        for key in [
            TestKey::rs256(&format!("{name}-rs256-1")),
            TestKey::es256(&format!("{name}-es256-1")),
        ] {
            state.keys.lock().unwrap().push((Arc::new(key), true));
        }
        let shared = state.clone();
        let server = spawn_server(move |req: hyper::Request<hyper::body::Incoming>| {
            let state = shared.clone();
            async move { state.answer(req.method(), req.uri().path()) }
        });
        let url = format!("http://{}", server.addr);
        state.url.set(url.clone()).unwrap();
        Self {
            url,
            state,
            _server: server,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.url)
    }

    /// Signs `claims` with the key `kid`, published or retired.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let keys = self.state.keys.lock().unwrap();
        let (key, _) = keys
            .iter()
            .find(|(k, _)| k.kid() == kid)
            .unwrap_or_else(|| panic!("the issuer holds no key `{kid}`"));
        key.sign(claims)
    }

    /// Signs with the newest published RS256 key.
    pub fn rs256(&self, claims: &Value) -> String {
        self.sign(&self.current("RS256"), claims)
    }

    /// Signs with the newest published ES256 key.
    pub fn es256(&self, claims: &Value) -> String {
        self.sign(&self.current("ES256"), claims)
    }

    /// The id of the newest published key for `alg`.
    pub fn current(&self, alg: &str) -> String {
        let keys = self.state.keys.lock().unwrap();
        keys.iter()
            .rev()
            .find(|(k, published)| *published && k.alg() == alg)
            .map(|(k, _)| k.kid().to_string())
            .unwrap_or_else(|| panic!("the issuer publishes no {alg} key"))
    }

    /// Key rotation: publishes `new` and retires every published key of
    /// the same algorithm, as an identity provider does once tokens signed
    /// with the old key have expired. Returns the new key's id.
    pub fn rotate(&self, new: TestKey) -> String {
        let kid = new.kid().to_string();
        let mut keys = self.state.keys.lock().unwrap();
        for (key, published) in keys.iter_mut() {
            if key.alg() == new.alg() {
                *published = false;
            }
        }
        keys.push((Arc::new(new), true));
        kid
    }

    /// Requests for the discovery document so far.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery.load(Ordering::SeqCst)
    }

    /// Requests for the JWKS so far.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks.load(Ordering::SeqCst)
    }

    /// Every request so far, whatever its path.
    pub fn requests(&self) -> usize {
        self.discovery_fetches() + self.jwks_fetches() + self.state.other.load(Ordering::SeqCst)
    }

    /// From now on (until [`Self::mend`]) every answer is an HTML page.
    pub fn break_down(&self) {
        self.state.broken.store(true, Ordering::SeqCst);
    }

    pub fn mend(&self) {
        self.state.broken.store(false, Ordering::SeqCst);
    }
}

impl State {
    fn answer(&self, method: &hyper::Method, path: &str) -> Response<Full<Bytes>> {
        let body = match (method, path) {
            (&hyper::Method::GET, DISCOVERY_PATH) => {
                self.discovery.fetch_add(1, Ordering::SeqCst);
                Some(self.discovery_document())
            }
            (&hyper::Method::GET, JWKS_PATH) => {
                self.jwks.fetch_add(1, Ordering::SeqCst);
                let keys = self.keys.lock().unwrap();
                let published: Vec<&TestKey> = keys
                    .iter()
                    .filter(|(_, published)| *published)
                    .map(|(k, _)| k.as_ref())
                    .collect();
                Some(jwks(&published))
            }
            _ => {
                self.other.fetch_add(1, Ordering::SeqCst);
                None
            }
        };
        if self.broken.load(Ordering::SeqCst) {
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from(
                    "<html><body>502 Bad Gateway</body></html>",
                )))
                .unwrap();
        }
        let (status, body) = match body {
            Some(body) => (StatusCode::OK, body),
            None => (
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found"}"#.to_string(),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    /// The fields GitHub's and GitLab's discovery documents share.
    fn discovery_document(&self) -> String {
        let url = self.url.get().expect("set before serving");
        json!({
            "issuer": url,
            "jwks_uri": format!("{url}{JWKS_PATH}"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": ["openid"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                                 "repository", "project_path", "ref_protected", "environment"],
        })
        .to_string()
    }
}

/// A fresh number for ids that differ between tokens (run, job, pipeline).
fn serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A unique `jti` in UUID form.
fn jti() -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", now() as u32, serial())
}

const SHA: &str = "e75edcc5b6cb88fc32f8d65d1da2655576b905ca";

/// One GitHub Actions job, as its OIDC token describes it ("OpenID Connect
/// reference", docs.github.com).
#[derive(Clone, Debug)]
pub struct GithubWorkflow {
    /// `owner/repo`.
    pub repository: String,
    /// The full ref: `refs/heads/main`, `refs/pull/1/merge`, `refs/tags/v1`.
    pub git_ref: String,
    pub event_name: String,
    pub ref_protected: bool,
    /// The job's deployment environment, which also changes `sub`.
    pub environment: Option<String>,
    /// Pull requests only: the source and target branches.
    pub head_ref: String,
    pub base_ref: String,
}

impl GithubWorkflow {
    /// A workflow run by a push to `branch`.
    pub fn push(repository: &str, branch: &str) -> Self {
        Self {
            repository: repository.into(),
            git_ref: format!("refs/heads/{branch}"),
            event_name: "push".into(),
            ref_protected: false,
            environment: None,
            head_ref: String::new(),
            base_ref: String::new(),
        }
    }

    /// A workflow run for pull request `number` from `head` into `base`.
    pub fn pull_request(repository: &str, number: u32, head: &str, base: &str) -> Self {
        Self {
            git_ref: format!("refs/pull/{number}/merge"),
            event_name: "pull_request".into(),
            head_ref: head.into(),
            base_ref: base.into(),
            ..Self::push(repository, base)
        }
    }

    pub fn protected(mut self) -> Self {
        self.ref_protected = true;
        self
    }

    pub fn in_environment(mut self, name: &str) -> Self {
        self.environment = Some(name.into());
        self
    }

    /// The default subject: the environment when the job names one, else
    /// `pull_request` for pull request events, else the ref.
    pub fn sub(&self) -> String {
        let repo = &self.repository;
        match &self.environment {
            Some(env) => format!("repo:{repo}:environment:{env}"),
            None if self.event_name == "pull_request" => format!("repo:{repo}:pull_request"),
            None => format!("repo:{repo}:ref:{}", self.git_ref),
        }
    }

    /// The token's claims for issuer `iss` and audience `aud`, valid for
    /// five minutes (GitHub's lifetime) from now.
    pub fn claims(&self, iss: &str, aud: &str) -> Value {
        let (owner, _) = self
            .repository
            .split_once('/')
            .expect("repository is owner/repo");
        let iat = now();
        let workflow_ref = format!(
            "{}/.github/workflows/build.yml@{}",
            self.repository, self.git_ref
        );
        let ref_type = if self.git_ref.starts_with("refs/tags/") {
            "tag"
        } else {
            "branch"
        };
        let run = serial();
        let mut c = json!({
            "jti": jti(),
            "sub": self.sub(),
            "aud": aud,
            "ref": self.git_ref,
            "sha": SHA,
            "repository": self.repository,
            "repository_owner": owner,
            "repository_owner_id": "65",
            "repository_id": "74",
            "repository_visibility": "private",
            "run_id": format!("{}", 10_000_000_000 + run),
            "run_number": format!("{run}"),
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "actor": "octocat",
            "actor_id": "12",
            "workflow": "build",
            "workflow_ref": workflow_ref,
            "workflow_sha": SHA,
            "head_ref": self.head_ref,
            "base_ref": self.base_ref,
            "event_name": self.event_name,
            "ref_type": ref_type,
            "ref_protected": self.ref_protected.to_string(),
            "job_workflow_ref": workflow_ref,
            "job_workflow_sha": SHA,
            "iss": iss,
            "nbf": iat - 300,
            "exp": iat + 300,
            "iat": iat,
        });
        if let Some(env) = &self.environment {
            c["environment"] = json!(env);
        }
        c
    }
}

/// One GitLab CI job, as its ID token (`id_tokens`) describes it ("OpenID
/// Connect (OIDC) Authentication Using ID Tokens", docs.gitlab.com).
#[derive(Clone, Debug)]
pub struct GitlabJob {
    /// `group/project` (subgroups allowed).
    pub project_path: String,
    /// The short ref name: `main`, `v1.0`.
    pub git_ref: String,
    /// `branch` or `tag`.
    pub ref_type: String,
    pub ref_protected: bool,
    pub pipeline_source: String,
    /// The environment the job deploys to: name, protected, tier.
    pub environment: Option<(String, bool, String)>,
}

impl GitlabJob {
    /// A job in a pipeline run by a push to `branch`.
    pub fn branch(project_path: &str, branch: &str, protected: bool) -> Self {
        Self {
            project_path: project_path.into(),
            git_ref: branch.into(),
            ref_type: "branch".into(),
            ref_protected: protected,
            pipeline_source: "push".into(),
            environment: None,
        }
    }

    pub fn in_environment(mut self, name: &str, protected: bool, tier: &str) -> Self {
        self.environment = Some((name.into(), protected, tier.into()));
        self
    }

    /// The default subject, which never names the environment.
    pub fn sub(&self) -> String {
        format!(
            "project_path:{}:ref_type:{}:ref:{}",
            self.project_path, self.ref_type, self.git_ref
        )
    }

    /// The token's claims for issuer `iss` and audience `aud`, valid for
    /// five minutes (GitLab's lifetime for a job without a timeout).
    pub fn claims(&self, iss: &str, aud: &str) -> Value {
        let (namespace, _) = self
            .project_path
            .rsplit_once('/')
            .expect("project_path is group/project");
        let host = iss
            .split_once("://")
            .map_or(iss, |(_, rest)| rest)
            .trim_end_matches('/');
        let ref_path = match self.ref_type.as_str() {
            "tag" => format!("refs/tags/{}", self.git_ref),
            _ => format!("refs/heads/{}", self.git_ref),
        };
        let iat = now();
        let job = serial();
        let mut c = json!({
            "namespace_id": "72",
            "namespace_path": namespace,
            "project_id": "20",
            "project_path": self.project_path,
            "user_id": "1",
            "user_login": "sample-user",
            "user_email": "sample-user@example.com",
            "user_access_level": "maintainer",
            "pipeline_id": format!("{}", 500 + job),
            "pipeline_source": self.pipeline_source,
            "job_id": format!("{}", 300 + job),
            "ref": self.git_ref,
            "ref_type": self.ref_type,
            "ref_path": ref_path,
            "ref_protected": self.ref_protected.to_string(),
            "runner_id": 1,
            "runner_environment": "self-hosted",
            "sha": SHA,
            "project_visibility": "private",
            "ci_config_ref_uri": format!("{host}/{}//.gitlab-ci.yml@{ref_path}", self.project_path),
            "ci_config_sha": SHA,
            "jti": jti(),
            "iss": iss,
            "iat": iat,
            "nbf": iat - 5,
            "exp": iat + 300,
            "sub": self.sub(),
            "aud": aud,
        });
        if let Some((name, protected, tier)) = &self.environment {
            c["environment"] = json!(name);
            c["environment_protected"] = json!(protected.to_string());
            c["deployment_tier"] = json!(tier);
        }
        c
    }
}
