//! `login`: the client half of the credential broker. It finds a caller
//! token (a flag, a file, a variable, or the CI system's own OIDC token),
//! asks serve for one project's credentials and hands them to the local
//! container tooling: `docker login`, `podman login`, or the Docker config
//! file that daemonless builders (buildah, skopeo, kaniko, crane) read.
//!
//! The image path is the only thing on stdout, so
//! `IMAGE=$(rise-registry login …)` works in a pipeline; what happened goes
//! to stderr. No token or password is ever printed: they travel as
//! [`Secret`]s, to the broker in a header and to a client on its stdin.
//!
//! The decisions (which token source, the URLs, what a broker answer means,
//! the merged config file, which login method) are pure functions at the
//! top; the HTTP requests, files and child processes that act on them come
//! after.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{Env, Status};
use crate::auth::AccessKind;
use crate::doctor::docker_config;
use crate::naming::ProjectName;
use crate::secret::Secret;

/// One HTTP request (the CI token, the broker) may take this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Answers are read up to this size: a token or a credentials document.
const MAX_BODY: usize = 64 * 1024;
/// `docker login` / `podman login` may take this long (they contact the
/// registry).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `docker version` may take to show the daemon answers.
const DAEMON_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the credentials reach the local tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// docker when its daemon answers, else podman, else the config file.
    Auto,
    /// `docker login --password-stdin`.
    Docker,
    /// `podman login --password-stdin`.
    Podman,
    /// The registry's entry in `$DOCKER_CONFIG/config.json`, for builders
    /// without a daemon.
    ConfigFile,
}

/// `login`'s flags.
#[derive(Debug)]
pub struct LoginOptions {
    /// The broker's base URL.
    pub server: String,
    pub project: String,
    pub access: AccessKind,
    pub token: TokenFlags,
    /// The `aud` asked of GitHub Actions' token endpoint.
    pub audience: String,
    pub method: Method,
    /// `--registry`: the registry host the credentials must be for.
    pub registry: Option<String>,
}

/// The token flags as given; clap lets at most one through.
#[derive(Debug, Default)]
pub struct TokenFlags {
    /// `--token`.
    pub token: Option<Secret<String>>,
    /// `--token-file` (`-` is standard input).
    pub file: Option<PathBuf>,
    /// `--token-env`: the name of a variable.
    pub env: Option<String>,
}

// ------------------------------------------------------ token sources ---

/// Where the caller token comes from, as chosen by [`token_source`].
#[derive(Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token`, or the value of the `--token-env` variable (`from` says
    /// which, for messages).
    Given { token: Secret<String>, from: String },
    /// `--token-file FILE`.
    File(PathBuf),
    /// `--token-file -`.
    Stdin,
    /// GitHub Actions' OIDC token endpoint, which the runner offers to jobs
    /// with `permissions: id-token: write`.
    GitHubActions {
        request_url: String,
        request_token: Secret<String>,
    },
}

/// The variables GitHub Actions sets in jobs allowed an OIDC token.
const GITHUB_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const GITHUB_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// The token source, in order: `--token`, `--token-file`, `--token-env`,
/// then GitHub Actions' token endpoint when its two variables are set.
/// GitLab CI puts its `id_tokens` in variables the job names, so there a
/// flag must name one; the error says so.
///
/// # Errors
/// No source at all, or a `--token-env` variable that is unset or empty;
/// the message lists what was tried and what to do in the CI system the
/// variables show.
pub fn token_source(
    flags: &TokenFlags,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<TokenSource> {
    let set = |name: &str| vars(name).filter(|v| !v.trim().is_empty());
    if let Some(token) = &flags.token {
        return Ok(TokenSource::Given {
            token: token.clone(),
            from: "--token".into(),
        });
    }
    if let Some(file) = &flags.file {
        return Ok(if file.as_os_str() == "-" {
            TokenSource::Stdin
        } else {
            TokenSource::File(file.clone())
        });
    }
    if let Some(name) = &flags.env {
        let Some(value) = set(name) else {
            let hint = if set("GITLAB_CI").is_some() {
                format!(
                    "declare it in the job: `id_tokens: {{{name}: {{aud: rise}}}}` (the `aud` serve's issuer entry accepts)"
                )
            } else {
                format!("set `{name}` to the caller token, or pass --token-file")
            };
            bail!("--token-env {name}: the variable is not set or is empty\n  hint: {hint}");
        };
        return Ok(TokenSource::Given {
            token: Secret::new(value.trim().to_string()),
            from: format!("${name}"),
        });
    }
    if let (Some(request_url), Some(request_token)) = (set(GITHUB_URL_VAR), set(GITHUB_TOKEN_VAR)) {
        return Ok(TokenSource::GitHubActions {
            request_url,
            request_token: Secret::new(request_token),
        });
    }
    let tried = format!(
        "tried --token, --token-file, --token-env, and GitHub Actions' OIDC token ({GITHUB_URL_VAR} and {GITHUB_TOKEN_VAR} are not both set)"
    );
    let hint = if set("GITLAB_CI").is_some() {
        "in GitLab CI, declare the token in the job (`id_tokens: {RISE_ID_TOKEN: {aud: rise}}`) and pass `--token-env RISE_ID_TOKEN`"
    } else if set("GITHUB_ACTIONS").is_some() {
        "in GitHub Actions, give the job `permissions: id-token: write` (and `contents: read`) so the runner offers an OIDC token"
    } else {
        "pass --token-file FILE (`-` for standard input) or --token-env VAR; in CI see docs/ci.md"
    };
    bail!("no caller token to ask the broker with: {tried}\n  hint: {hint}")
}

// ------------------------------------------------------------- URLs ---

/// Characters percent-encoded in a query value: all but RFC 3986's
/// unreserved ones.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// GitHub's token request: the runner's URL (which carries its own query)
/// plus `audience`.
pub fn github_token_url(request_url: &str, audience: &str) -> String {
    // As `check_url` reads it.
    let request_url = request_url.trim();
    let separator = if request_url.contains('?') { '&' } else { '?' };
    format!(
        "{request_url}{separator}audience={}",
        utf8_percent_encode(audience, QUERY_VALUE)
    )
}

/// `--server` checked and without its trailing `/`: an `http` or `https`
/// URL with a host, and no query or fragment to splice a path into.
///
/// # Errors
/// Anything else, with an example of the expected form.
pub fn broker_base(server: &str) -> Result<String> {
    let base = server.trim().trim_end_matches('/');
    let problem = match (base.parse::<hyper::Uri>(), crate::https::check_url(base)) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(uri), _) if !matches!(uri.scheme_str(), Some("http" | "https")) => {
            Some("it needs the scheme, http:// or https://".to_string())
        }
        (Ok(uri), _) if uri.host().is_none_or(str::is_empty) => Some("it has no host".to_string()),
        _ if base.contains(['?', '#']) => Some("it has a query or fragment".to_string()),
        (_, Err(why)) => Some(url_problem(why)),
        (_, Ok(_)) => None,
    };
    match problem {
        Some(problem) => bail!(
            "--server {server}: not a broker URL: {problem}\n  hint: give serve's base URL, e.g. `--server https://rise.example.com`"
        ),
        None => Ok(base.to_string()),
    }
}

/// What is wrong with a URL the caller's (or the runner's) token would go
/// to, in the words of login's errors.
fn url_problem(why: crate::https::UrlProblem) -> String {
    use crate::https::UrlProblem;
    match why {
        UrlProblem::NotHttp => "it is not an http:// or https:// URL with a host".to_string(),
        // `http://localhost:1@10.0.0.1:2` connects to 10.0.0.1:2.
        UrlProblem::UserInfo => "it has user info (`…@`) before its host, so the token would go to the host after the `@`".to_string(),
        // The token is a bearer credential: it crosses a network only
        // inside TLS.
        UrlProblem::PlainHttp => "plain http:// would send the caller token unencrypted; use https:// (http:// is for loopback only)".to_string(),
    }
}

/// The credentials request for `project`. Project names are validated
/// path components, so they need no escaping.
pub fn credentials_url(base: &str, project: &ProjectName, access: AccessKind) -> String {
    format!(
        "{base}/registry/credentials?project={project}&access={}",
        access.as_str()
    )
}

/// A URL without its query, for messages: a token endpoint's query is
/// long and says nothing to a reader.
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

// ---------------------------------------------------- broker answers ---

/// The credentials the broker issued.
#[derive(Debug)]
pub struct Grant {
    /// The registry host to log in to (`registry_url`).
    pub registry: String,
    pub username: String,
    pub password: Secret<String>,
    /// Where to push: `{registry}/{repository path}`.
    pub image: String,
}

impl Grant {
    /// A registry that takes no credentials from the broker
    /// (`oci-client-auth`) answers empty ones.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty() && self.password.expose().is_empty()
    }
}

/// A 200 answer's body.
///
/// # Errors
/// A body that is not the documented document.
pub fn parse_grant(body: &[u8]) -> Result<Grant> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| anyhow!("the broker's answer is not JSON: {e}"))?;
    let field = |value: &Value, name: &str| -> Result<String> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the broker's answer has no `{name}` string"))
    };
    let c = &v["credentials"];
    let grant = Grant {
        registry: field(&c["registry_url"], "credentials.registry_url")?,
        username: field(&c["username"], "credentials.username")?,
        password: Secret::new(field(&c["password"], "credentials.password")?),
        image: field(&v["image"], "image")?,
    };
    if grant.registry.is_empty() || grant.image.is_empty() {
        bail!("the broker's answer names no registry or image");
    }
    // The registry goes on a `docker login` command line and into the
    // Docker config: a host and port, nothing that could read as a flag.
    if crate::naming::RegistryHost::parse(&grant.registry).is_err() {
        bail!(
            "the broker's answer names registry `{}`, which is not a host[:port]",
            grant.registry.escape_default()
        );
    }
    if grant.username.is_empty() != grant.password.expose().is_empty() {
        bail!("the broker's answer has a username or a password, but not both");
    }
    // The username is printed and becomes `user:password` in the Docker
    // config: a `:` would make another user of the password, a control
    // character would rewrite the line it is printed on.
    if grant.username.contains(':') || grant.username.chars().any(char::is_control) {
        bail!(
            "the broker's answer has username `{}`, which holds a `:` or a control character",
            grant.username.escape_default()
        );
    }
    // The image is what the pipeline pushes to: it must be a repository
    // on the registry just logged in to, one line, nothing else.
    if !is_repository_on(&grant.image, &grant.registry) {
        bail!(
            "the broker's answer names image `{}`, which is not a repository on {}",
            grant.image.escape_default(),
            grant.registry
        );
    }
    Ok(grant)
}

/// Whether `image` is `{registry}/{path}`, `path` a repository name as
/// the OCI distribution spec writes them: lower-case components of
/// letters and digits joined by `.`, `_`, `__` or dashes, separated by
/// `/`; no tag, digest or anything after.
fn is_repository_on(image: &str, registry: &str) -> bool {
    let Some(path) = image
        .strip_prefix(registry)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    let component = |c: &str| {
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = c.as_bytes();
        if bytes.first().is_none_or(|b| !alnum(*b)) || bytes.last().is_none_or(|b| !alnum(*b)) {
            return false;
        }
        // Separators between alphanumeric runs: `.`, `_`, `__` or dashes.
        let mut run = String::new();
        for &b in bytes {
            if alnum(b) {
                if !(run.is_empty()
                    || run == "."
                    || run == "_"
                    || run == "__"
                    || run.bytes().all(|r| r == b'-'))
                {
                    return false;
                }
                run.clear();
            } else if matches!(b, b'.' | b'_' | b'-') {
                run.push(char::from(b));
            } else {
                return false;
            }
        }
        true
    };
    path.len() <= 255 && path.split('/').all(component)
}

/// What was asked, for the messages of a refusal.
pub struct Ask<'a> {
    pub base: &'a str,
    pub project: &'a ProjectName,
    pub access: AccessKind,
}

/// The error for a non-200 answer: what it means and what to change.
pub fn broker_refusal(
    ask: &Ask<'_>,
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
) -> anyhow::Error {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    // The broker's words are printed: without control characters, so
    // they cannot rewrite the lines around them.
    let visible = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let code = visible(v["error"]["code"].as_str().unwrap_or_default());
    let message = visible(v["error"]["message"].as_str().unwrap_or_default());
    let (code, message) = (code.as_str(), message.as_str());
    let detail = match (code, message) {
        ("", "") => status.as_u16().to_string(),
        ("", m) => format!("{} {m}", status.as_u16()),
        (c, "") => format!("{} {c}", status.as_u16()),
        (c, m) => format!("{} {c}: {m}", status.as_u16()),
    };
    let base = ask.base;
    let retry = match retry_after.map(str::trim) {
        Some(s) if s.parse::<u64>().is_ok() => format!("retry after {s} s"),
        Some(s) if !s.is_empty() => format!("retry after {s}"),
        _ => "retry later".to_string(),
    };
    match status {
        StatusCode::UNAUTHORIZED => anyhow!(
            "the broker at {base} refused the token ({detail})\n  hint: serve accepts tokens from the issuers in its `auth` config, for the audience each issuer entry names: check the token's issuer (`iss`) and audience (`aud`); GitHub Actions tokens carry --audience (default `rise`), GitLab CI tokens the `aud` of their `id_tokens` entry"
        ),
        StatusCode::NOT_FOUND => {
            let (verb, rules) = match ask.access {
                AccessKind::Push => ("push to", "`access` rules"),
                AccessKind::Pull => ("pull from", "`access` or `pull_access` rules"),
            };
            anyhow!(
                "the broker at {base} has no project `{project}` that this token may {verb} ({detail})\n  hint: check the --project name, and that one of the project's {rules} in serve's config matches this token (its identities, or a CI token's issuer and claims)",
                project = ask.project
            )
        }
        StatusCode::TOO_MANY_REQUESTS => {
            anyhow!("the broker at {base} is rate limiting this caller ({detail}); {retry}")
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            anyhow!("the broker at {base} cannot issue credentials right now ({detail}); {retry}")
        }
        _ => anyhow!("the broker at {base} answered {detail}"),
    }
}

// ------------------------------------------------------- config file ---

/// `config.json` with `registry`'s login in `auths`, replacing only that
/// entry: other registries, credential helpers and every other top-level
/// key stay as they were (keys come back sorted). No file yet is `{}`.
///
/// # Errors
/// When the existing text is not a JSON object, or its `auths` is not
/// one: login will not overwrite what it cannot read.
pub fn merge_docker_config(
    existing: Option<&str>,
    registry: &str,
    username: &str,
    password: &Secret<String>,
) -> Result<String, String> {
    let mut config = match existing.filter(|t| !t.trim().is_empty()) {
        None => json!({}),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?,
    };
    let Some(top) = config.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let auths = top.entry("auths").or_insert_with(|| json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err("its `auths` is not a JSON object".into());
    };
    let auth = BASE64.encode(format!("{username}:{}", password.expose()));
    auths.insert(registry.to_string(), json!({ "auth": auth }));
    let mut text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// A note when the Docker CLI would not read the new entry: a credential
/// helper is named for the registry (or for all of them).
pub fn helper_note(merged: &str, registry: &str) -> Option<String> {
    let config: Value = serde_json::from_str(merged).ok()?;
    match docker_config::credentials_for(&config, registry) {
        docker_config::Source::Helper { name, key } => Some(format!(
            "note: the config's `{key}` names docker-credential-{name}, so the Docker CLI asks it for {registry} and not this entry; buildah, skopeo and kaniko read the entry"
        )),
        _ => None,
    }
}

// ------------------------------------------------------------ method ---

/// What `--method auto` picks: docker when on PATH and its daemon answers
/// (`docker_answers`, `None` when not on PATH), else podman when on PATH,
/// else the config file.
pub fn auto_method(docker_answers: Option<bool>, podman_found: bool) -> Method {
    match (docker_answers, podman_found) {
        (Some(true), _) => Method::Docker,
        (_, true) => Method::Podman,
        _ => Method::ConfigFile,
    }
}

// ============================================================== I/O ===

/// Runs `login`: token, credentials, login, then the image on stdout.
///
/// # Errors
/// Every failure, with what to fix: no token source, a token endpoint or
/// broker that refuses or cannot be reached, a login that fails.
pub fn run(options: &LoginOptions, env: &mut Env<'_>) -> Result<Status> {
    let base = broker_base(&options.server)?;
    let project = ProjectName::parse(&options.project).map_err(|e| {
        let hint = e
            .hint
            .as_ref()
            .map(|h| format!("\n  hint: {h}"))
            .unwrap_or_default();
        anyhow!("--project {}: {e}{hint}", options.project)
    })?;
    let source = token_source(&options.token, env.vars)?;
    let runtime = crate::runtime::build()?;
    let token = match source {
        TokenSource::GitHubActions {
            request_url,
            request_token,
        } => runtime.block_on(github_token(
            &request_url,
            &request_token,
            &options.audience,
        ))?,
        local => read_local(local, env)?,
    };
    let ask = Ask {
        base: &base,
        project: &project,
        access: options.access,
    };
    let grant = runtime.block_on(ask_broker(&ask, &token))?;
    // Host names are case-insensitive.
    if let Some(expected) = &options.registry
        && !grant.registry.eq_ignore_ascii_case(expected)
    {
        bail!(
            "the broker handed out credentials for {}, not for --registry {expected}; nothing was logged in\n  hint: check --server, or drop --registry if the broker's registry moved",
            grant.registry
        );
    }
    if grant.is_anonymous() {
        writeln!(
            env.stderr,
            "{} takes no credentials from the broker: nothing was written; push with the registry's own login, if it asks for one",
            grant.registry
        )?;
    } else {
        // The variables that hold a token never reach the client: it
        // needs the registry password only, on its stdin.
        let mut hidden: Vec<&str> = vec![GITHUB_URL_VAR, GITHUB_TOKEN_VAR];
        hidden.extend(options.token.env.as_deref());
        let how = log_in(options.method, &grant, &hidden, env, &runtime)?;
        writeln!(
            env.stderr,
            "logged in to {} as {} ({how})",
            grant.registry, grant.username
        )?;
    }
    writeln!(env.stdout, "{}", grant.image)?;
    Ok(Status::Success)
}

/// The token of a source read here rather than asked for: a flag's value
/// or variable, a file, standard input. Also doctor's, for `--url`.
///
/// # Errors
/// An unreadable or empty file or input; GitHub Actions' endpoint, which
/// is asked ([`run`]), not read.
pub fn read_local(source: TokenSource, env: &mut Env<'_>) -> Result<Secret<String>> {
    match source {
        TokenSource::Given { token, from } => checked_token(token.expose().clone(), &from),
        TokenSource::File(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading --token-file {}", path.display()))?;
            checked_token(text, &path.display().to_string())
        }
        TokenSource::Stdin => read_token_stdin(env),
        TokenSource::GitHubActions { .. } => {
            bail!("GitHub Actions' OIDC token is asked of its endpoint, not read here")
        }
    }
}

/// A token read whole and trimmed; empty is an error naming `from`.
fn checked_token(text: String, from: &str) -> Result<Secret<String>> {
    let token = text.trim();
    if token.is_empty() {
        bail!("{from} holds no token (it is empty)");
    }
    Ok(Secret::new(token.to_string()))
}

/// `--token-file -`. The terminal, when stdin is one, is already locked
/// by the caller and given as `env.terminal`: a second lock would wait
/// forever, so the line is read there. Otherwise stdin is a pipe or file
/// nobody holds.
fn read_token_stdin(env: &mut Env<'_>) -> Result<Secret<String>> {
    let mut text = String::new();
    match env.terminal.as_mut() {
        Some(terminal) => {
            terminal
                .read_line(&mut text)
                .context("reading the token from standard input")?;
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the token from standard input")?;
        }
    }
    checked_token(text, "standard input")
}

/// `GET url` with `Authorization: {authorization}` (marked sensitive, so
/// hyper never logs it), over http or https with the system's roots.
/// The error is one line, without the URL.
async fn get(url: &str, authorization: &str) -> Result<crate::https::Reply, String> {
    let client = crate::https::client()?;
    let mut value = hyper::header::HeaderValue::from_str(authorization)
        .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
    value.set_sensitive(true);
    let headers = [
        (hyper::header::AUTHORIZATION, value),
        (
            hyper::header::ACCEPT,
            hyper::header::HeaderValue::from_static("application/json"),
        ),
    ];
    let limits = crate::https::Limits {
        timeout: HTTP_TIMEOUT,
        max_body: MAX_BODY,
    };
    crate::https::get(&client, url, &headers, limits)
        .await
        .map_err(|e| e.to_string())
}

/// GitHub Actions' OIDC token for `audience`.
async fn github_token(
    request_url: &str,
    request_token: &Secret<String>,
    audience: &str,
) -> Result<Secret<String>> {
    let endpoint = without_query(request_url);
    // The runner's request token goes there: the same rule as --server.
    if let Err(why) = crate::https::check_url(request_url) {
        bail!(
            "{GITHUB_URL_VAR} {endpoint}: not a token endpoint login sends the request token to: {}",
            url_problem(why)
        );
    }
    let url = github_token_url(request_url, audience);
    let answer = get(&url, &format!("bearer {}", request_token.expose()))
        .await
        .map_err(|cause| {
            anyhow!("cannot reach GitHub Actions' OIDC token endpoint {endpoint}: {cause}")
        })?;
    if answer.status != StatusCode::OK {
        bail!(
            "GitHub Actions' OIDC token endpoint {endpoint} answered {} for audience `{audience}`\n  hint: the job needs `permissions: id-token: write`; --audience must be a plain string",
            answer.status
        );
    }
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    match v["value"].as_str() {
        Some(token) if !token.is_empty() => Ok(Secret::new(token.to_string())),
        _ => bail!("GitHub Actions' OIDC token endpoint {endpoint} answered without a token"),
    }
}

/// The broker's credentials for `ask`.
async fn ask_broker(ask: &Ask<'_>, token: &Secret<String>) -> Result<Grant> {
    let url = credentials_url(ask.base, ask.project, ask.access);
    let answer = get(&url, &format!("Bearer {}", token.expose()))
        .await
        .map_err(|cause| {
            anyhow!(
                "cannot reach the broker at {}: {cause}\n  hint: check --server (scheme, host and port) and that serve runs and is reachable from here",
                ask.base
            )
        })?;
    if answer.status != StatusCode::OK {
        let refusal = broker_refusal(
            ask,
            answer.status,
            answer.header(hyper::header::RETRY_AFTER),
            &answer.body,
        );
        // A broker (or a proxy before it) that echoes the request would
        // put the caller token on stderr, into the CI log.
        let text = format!("{refusal:#}");
        let secret = token.expose();
        return Err(if !secret.is_empty() && text.contains(secret.as_str()) {
            anyhow!("{}", text.replace(secret.as_str(), "[REDACTED]"))
        } else {
            refusal
        });
    }
    parse_grant(&answer.body).map_err(|e| {
        anyhow!(
            "{e}\n  hint: is --server {} a rise-registry serve?",
            ask.base
        )
    })
}

/// Logs in with `method`; returns how, for the closing line.
fn log_in(
    method: Method,
    grant: &Grant,
    hidden: &[&str],
    env: &mut Env<'_>,
    runtime: &tokio::runtime::Runtime,
) -> Result<String> {
    let path_var = (env.vars)("PATH");
    let find = |program: &str| find_on_path(program, path_var.as_deref());
    let method = match method {
        Method::Auto => {
            let docker = find("docker").map(|docker| runtime.block_on(docker_answers(&docker)));
            auto_method(docker, find("podman").is_some())
        }
        explicit => explicit,
    };
    match method {
        Method::Docker | Method::Podman => {
            let name = if method == Method::Docker {
                "docker"
            } else {
                "podman"
            };
            let program = find(name).ok_or_else(|| {
                anyhow!(
                    "--method {name}: `{name}` is not on PATH\n  hint: install it, or use --method config-file to write the Docker config file for a daemonless builder"
                )
            })?;
            runtime.block_on(client_login(&program, name, grant, hidden))?;
            Ok(format!("{name} login"))
        }
        // `auto` was resolved above; the arm only completes the match.
        Method::Auto | Method::ConfigFile => {
            let path = docker_config::config_path(env.vars).ok_or_else(|| {
                anyhow!(
                    "no Docker config directory: neither DOCKER_CONFIG nor HOME is set\n  hint: set DOCKER_CONFIG to the directory the builder reads config.json from"
                )
            })?;
            let merged = write_docker_config(&path, grant)?;
            if let Some(note) = helper_note(&merged, &grant.registry) {
                writeln!(env.stderr, "{note}")?;
            }
            Ok(format!("wrote {}", path.display()))
        }
    }
}

/// The first executable file called `program` in `path` (`PATH`'s value).
fn find_on_path(program: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `docker version` reaches a daemon: the docker CLI's login goes
/// through its daemon, so without one it cannot work.
async fn docker_answers(docker: &Path) -> bool {
    let status = tokio::process::Command::new(docker)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(DAEMON_PROBE_TIMEOUT, status).await,
        Ok(Ok(s)) if s.success()
    )
}

/// `{name} login --username U --password-stdin REGISTRY`, the password on
/// its stdin. Its own output is kept off our stdout, which holds only the
/// image; its stderr explains a failure.
async fn client_login(program: &Path, name: &str, grant: &Grant, hidden: &[&str]) -> Result<()> {
    let login = async {
        let mut command = tokio::process::Command::new(program);
        for var in hidden {
            command.env_remove(var);
        }
        let mut child = command
            .args([
                "login",
                "--username",
                &grant.username,
                "--password-stdin",
                "--",
            ])
            .arg(&grant.registry)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            // A client that exits early closes the pipe; its exit status
            // and stderr say why, so a failed write is not the error.
            let _ = stdin.write_all(grant.password.expose().as_bytes()).await;
        }
        child.wait_with_output().await.map_err(anyhow::Error::from)
    };
    let output = tokio::time::timeout(CLIENT_TIMEOUT, login)
        .await
        .map_err(|_| {
            anyhow!(
                "registry login failed: `{name} login {}` did not finish within {} s",
                grant.registry,
                CLIENT_TIMEOUT.as_secs()
            )
        })??;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    bail!(
        "registry login failed: `{name} login {}` {}: {}\n  hint: the credentials are fresh from the broker, so check that {} is reachable from here (and, for podman with a plain-HTTP registry, its registries.conf); --method config-file writes the login without contacting the registry",
        grant.registry,
        output.status,
        stderr.trim(),
        grant.registry,
    )
}

/// Merges the login into the file at `path` and replaces it atomically
/// (a temporary file in the same directory, renamed over it), mode 0600;
/// a missing directory is created 0700. Returns the merged text.
///
/// # Errors
/// An unreadable or unparseable existing file (left as it is), or a
/// failed write.
fn write_docker_config(path: &Path, grant: &Grant) -> Result<String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let merged = merge_docker_config(
        existing.as_deref(),
        &grant.registry,
        &grant.username,
        &grant.password,
    )
    .map_err(|problem| {
        anyhow!(
            "{} is {problem}\n  hint: fix or move it; login does not overwrite a file it cannot read",
            path.display()
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        // A leftover of a crashed run with the same pid would make
        // `create_new` fail; it holds nothing worth keeping.
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(merged.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temporary);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test variables as the `vars` closure commands take.
    fn vars_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn flags() -> TokenFlags {
        TokenFlags::default()
    }

    fn err_text(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn flags_come_first_in_their_order() {
        let vars = vars_of(&[
            (GITHUB_URL_VAR, "https://gh/idtoken?api-version=2.0"),
            (GITHUB_TOKEN_VAR, "req"),
            ("RISE_ID_TOKEN", " tok\n"),
        ]);
        let given = TokenFlags {
            token: Some(Secret::new("t".into())),
            ..flags()
        };
        assert!(matches!(
            token_source(&given, &vars).unwrap(),
            TokenSource::Given { from, .. } if from == "--token"
        ));
        let file = TokenFlags {
            file: Some("tok.jwt".into()),
            ..flags()
        };
        assert_eq!(
            token_source(&file, &vars).unwrap(),
            TokenSource::File("tok.jwt".into())
        );
        let stdin = TokenFlags {
            file: Some("-".into()),
            ..flags()
        };
        assert_eq!(token_source(&stdin, &vars).unwrap(), TokenSource::Stdin);
        let env = TokenFlags {
            env: Some("RISE_ID_TOKEN".into()),
            ..flags()
        };
        assert_eq!(
            token_source(&env, &vars).unwrap(),
            TokenSource::Given {
                token: Secret::new("tok".into()),
                from: "$RISE_ID_TOKEN".into()
            }
        );
        // No flag: GitHub Actions' endpoint.
        assert_eq!(
            token_source(&flags(), &vars).unwrap(),
            TokenSource::GitHubActions {
                request_url: "https://gh/idtoken?api-version=2.0".into(),
                request_token: Secret::new("req".into()),
            }
        );
    }

    #[test]
    fn without_a_source_the_error_lists_what_was_tried_and_fits_the_ci_system() {
        let plain = err_text(token_source(&flags(), &vars_of(&[])).unwrap_err());
        assert!(
            plain.starts_with("no caller token to ask the broker with: tried --token, --token-file, --token-env, and GitHub Actions' OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not both set)"),
            "{plain}"
        );
        assert!(plain.contains("hint: pass --token-file FILE"), "{plain}");
        let gitlab =
            err_text(token_source(&flags(), &vars_of(&[("GITLAB_CI", "true")])).unwrap_err());
        assert!(
            gitlab.contains("hint: in GitLab CI, declare the token in the job (`id_tokens: {RISE_ID_TOKEN: {aud: rise}}`) and pass `--token-env RISE_ID_TOKEN`"),
            "{gitlab}"
        );
        // One of GitHub's two variables is not enough; the hint is the
        // permission that makes the runner set both.
        let github = err_text(
            token_source(
                &flags(),
                &vars_of(&[("GITHUB_ACTIONS", "true"), (GITHUB_URL_VAR, "https://gh")]),
            )
            .unwrap_err(),
        );
        assert!(
            github.contains("give the job `permissions: id-token: write`"),
            "{github}"
        );
    }

    #[test]
    fn an_unset_token_variable_is_named() {
        let env = TokenFlags {
            env: Some("RISE_ID_TOKEN".into()),
            ..flags()
        };
        let e = err_text(
            token_source(
                &env,
                &vars_of(&[("GITLAB_CI", "true"), ("RISE_ID_TOKEN", " ")]),
            )
            .unwrap_err(),
        );
        assert!(
            e.starts_with("--token-env RISE_ID_TOKEN: the variable is not set or is empty"),
            "{e}"
        );
        assert!(
            e.contains("`id_tokens: {RISE_ID_TOKEN: {aud: rise}}`"),
            "{e}"
        );
    }

    #[test]
    fn the_brokers_answer_is_checked_before_it_is_printed_or_used() {
        let answer = |user: &str, image: &str| {
            let body = serde_json::json!({
                "credentials": {"registry_url": "registry.example.com:5000",
                                "username": user, "password": "p"},
                "image": image});
            parse_grant(body.to_string().as_bytes())
        };
        let on = "registry.example.com:5000/rise-apps/my-app";
        assert!(answer("AWS", on).is_ok());
        assert!(answer("AWS", "registry.example.com:5000/a/b__c/d-e.f/g--h").is_ok());
        for image in [
            // Another registry: `docker push "$IMAGE"` would go there.
            "evil.example.com/rise-apps/my-app",
            "registry.example.com:50001/rise-apps/my-app",
            "registry.example.com:5000.evil.example.com/x",
            // A second line, a tag, upper case, an empty component.
            "registry.example.com:5000/rise-apps/my-app\nevil.example.com/x",
            "registry.example.com:5000/rise-apps/my-app:latest",
            "registry.example.com:5000/Rise/my-app",
            "registry.example.com:5000//my-app",
            "registry.example.com:5000/my-app/",
            "registry.example.com:5000/-x",
            "registry.example.com:5000",
        ] {
            let e = err_text(answer("AWS", image).unwrap_err());
            assert!(
                e.contains("which is not a repository on registry.example.com:5000"),
                "{image}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        for user in ["a:b", "AWS\u{1b}[2K", "line\nbreak"] {
            let e = err_text(answer(user, on).unwrap_err());
            assert!(
                e.contains("holds a `:` or a control character"),
                "{user:?}: {e}"
            );
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
    }

    #[test]
    fn a_refusal_prints_the_brokers_words_without_control_characters() {
        let project = ProjectName::parse("my-app").unwrap();
        let ask = Ask {
            base: "https://b",
            project: &project,
            access: AccessKind::Push,
        };
        let body = br#"{"error":{"code":"denied\u001b[2K","message":"no\rpe\nhidden"}}"#;
        let e = err_text(broker_refusal(&ask, StatusCode::FORBIDDEN, None, body));
        assert!(e.contains("403 denied[2K: nopehidden"), "{e:?}");
        assert!(!e.contains('\u{1b}') && !e.contains('\r'), "{e:?}");
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let source = TokenSource::GitHubActions {
            request_url: "https://gh".into(),
            request_token: Secret::new("request-secret".into()),
        };
        let options = LoginOptions {
            server: "https://b".into(),
            project: "p".into(),
            access: AccessKind::Push,
            token: TokenFlags {
                token: Some(Secret::new("caller-secret".to_string())),
                ..flags()
            },
            audience: "rise".into(),
            method: Method::Auto,
            registry: None,
        };
        let grant = parse_grant(
            br#"{"credentials":{"registry_url":"r:5000","username":"u","password":"registry-secret"},"image":"r:5000/x"}"#,
        )
        .unwrap();
        let text = format!("{source:?} {options:?} {grant:?} {grant:#?}");
        for secret in ["request-secret", "caller-secret", "registry-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("[REDACTED]"));
    }

    #[tokio::test]
    async fn the_runner_token_goes_only_where_a_caller_token_may() {
        let request = Secret::new("runner-secret".to_string());
        for (bad, why) in [
            (
                "http://[::ffff:10.0.0.1]:1/t?api-version=2.0",
                "unencrypted",
            ),
            ("http://pipelines.example.com/t", "unencrypted"),
            ("http://localhost:1@127.0.0.1:2/t", "user info"),
            ("file:///etc/passwd", "not an http:// or https:// URL"),
        ] {
            let e = format!(
                "{:#}",
                github_token(bad, &request, "rise").await.unwrap_err()
            );
            assert!(
                e.starts_with("ACTIONS_ID_TOKEN_REQUEST_URL ") && e.contains(why),
                "{bad}: {e}"
            );
            assert!(
                !e.contains("runner-secret") && !e.contains("api-version"),
                "{e}"
            );
        }
    }

    #[test]
    fn urls_are_built_from_checked_parts() {
        assert_eq!(
            github_token_url("https://gh/idtoken?api-version=2.0", "rise"),
            "https://gh/idtoken?api-version=2.0&audience=rise"
        );
        assert_eq!(
            github_token_url("http://127.0.0.1:1/t", "a b&c=d"),
            "http://127.0.0.1:1/t?audience=a%20b%26c%3Dd"
        );
        let project = ProjectName::parse("my-app").unwrap();
        let base = broker_base("https://rise.example.com/api/").unwrap();
        assert_eq!(base, "https://rise.example.com/api");
        assert_eq!(
            credentials_url(&base, &project, AccessKind::Push),
            "https://rise.example.com/api/registry/credentials?project=my-app&access=push"
        );
        assert_eq!(
            credentials_url("http://127.0.0.1:3000", &project, AccessKind::Pull),
            "http://127.0.0.1:3000/registry/credentials?project=my-app&access=pull"
        );
        // A bearer token goes over plain HTTP to loopback only.
        for local in [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://[::1]:3000",
        ] {
            assert!(broker_base(local).is_ok(), "{local}");
        }
        let e = err_text(broker_base("http://rise.example.com").unwrap_err());
        assert!(e.contains("unencrypted; use https://"), "{e}");
        // IPv4's loopback in IPv6 form is loopback; another address in that
        // form is not; user info that hides the real host is refused.
        assert!(broker_base("http://[::ffff:127.0.0.1]:3000").is_ok());
        let e = err_text(broker_base("http://[::ffff:10.0.0.1]:3000").unwrap_err());
        assert!(e.contains("unencrypted; use https://"), "{e}");
        for hidden in [
            "http://localhost:18090@127.0.0.1:13000",
            "https://rise.example.com@evil.example.com",
        ] {
            let e = err_text(broker_base(hidden).unwrap_err());
            assert!(
                e.contains("user info (`…@`) before its host"),
                "{hidden}: {e}"
            );
        }
        for bad in [
            "rise.example.com",
            "ftp://rise.example.com",
            "https://",
            "https://b/?x=1",
            "http://10.0.0.1:3000",
            "",
        ] {
            let e = err_text(broker_base(bad).unwrap_err());
            assert!(
                e.contains("not a broker URL") && e.contains("e.g. `--server https://"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            without_query("https://gh/idtoken?api-version=2.0"),
            "https://gh/idtoken"
        );
    }

    #[test]
    fn a_grant_is_read_and_checked() {
        let anonymous = parse_grant(
            br#"{"credentials":{"registry_url":"localhost:5000","username":"","password":""},"repository":"a","image":"localhost:5000/rise-apps/a"}"#,
        )
        .unwrap();
        assert!(anonymous.is_anonymous());
        assert_eq!(anonymous.image, "localhost:5000/rise-apps/a");
        for bad in [
            &b"not json"[..],
            br#"{"credentials":{"registry_url":"r","username":"u"},"image":"r/a"}"#,
            br#"{"credentials":{"registry_url":"r","username":"u","password":""},"image":"r/a"}"#,
            br#"{"credentials":{"registry_url":"","username":"","password":""},"image":"r/a"}"#,
        ] {
            assert!(
                parse_grant(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn refusals_say_what_to_change() {
        let project = ProjectName::parse("my-app").unwrap();
        let ask = |access| Ask {
            base: "https://b",
            project: &project,
            access,
        };
        let body = br#"{"error":{"code":"project_not_found","message":"no such project, or no access to it"}}"#;
        let push = err_text(broker_refusal(
            &ask(AccessKind::Push),
            StatusCode::NOT_FOUND,
            None,
            body,
        ));
        assert_eq!(
            push,
            "the broker at https://b has no project `my-app` that this token may push to (404 project_not_found: no such project, or no access to it)\n  hint: check the --project name, and that one of the project's `access` rules in serve's config matches this token (its identities, or a CI token's issuer and claims)"
        );
        let pull = err_text(broker_refusal(
            &ask(AccessKind::Pull),
            StatusCode::NOT_FOUND,
            None,
            b"",
        ));
        assert!(
            pull.contains("may pull from (404)")
                && pull.contains("`access` or `pull_access` rules"),
            "{pull}"
        );
        let refused = err_text(broker_refusal(
            &ask(AccessKind::Push),
            StatusCode::UNAUTHORIZED,
            None,
            br#"{"error":{"code":"invalid_token","message":"the token's audience is not accepted"}}"#,
        ));
        assert!(
            refused.starts_with("the broker at https://b refused the token (401 invalid_token: the token's audience is not accepted)")
                && refused.contains("audience (`aud`)")
                && refused.contains("issuer (`iss`)"),
            "{refused}"
        );
        assert_eq!(
            err_text(broker_refusal(
                &ask(AccessKind::Push),
                StatusCode::TOO_MANY_REQUESTS,
                Some("7"),
                br#"{"error":{"code":"rate_limited","message":"slow down"}}"#,
            )),
            "the broker at https://b is rate limiting this caller (429 rate_limited: slow down); retry after 7 s"
        );
        assert!(
            err_text(broker_refusal(
                &ask(AccessKind::Push),
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                b"",
            ))
            .ends_with("cannot issue credentials right now (503); retry later")
        );
        assert_eq!(
            err_text(broker_refusal(
                &ask(AccessKind::Push),
                StatusCode::BAD_REQUEST,
                None,
                br#"{"error":{"code":"invalid_access","message":"access must be push or pull"}}"#,
            )),
            "the broker at https://b answered 400 invalid_access: access must be push or pull"
        );
    }

    #[test]
    fn the_merge_replaces_one_entry_and_keeps_everything_else() {
        let existing = r#"{"auths": {"other:5000": {"auth": "b3RoZXI6eA=="}, "r:5000": {"auth": "old", "identitytoken": "old"}},
            "credHelpers": {"gcr.io": "gcloud"}, "HttpHeaders": {"User-Agent": "ci"}, "psFormat": "table"}"#;
        let merged =
            merge_docker_config(Some(existing), "r:5000", "rise", &Secret::new("pw".into()))
                .unwrap();
        let v: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            v,
            json!({"auths": {"other:5000": {"auth": "b3RoZXI6eA=="}, "r:5000": {"auth": BASE64.encode("rise:pw")}},
                "credHelpers": {"gcr.io": "gcloud"}, "HttpHeaders": {"User-Agent": "ci"}, "psFormat": "table"})
        );
        assert!(merged.ends_with("}\n"));
        let fresh = merge_docker_config(None, "r:5000", "AWS", &Secret::new("pw".into())).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&fresh).unwrap(),
            json!({"auths": {"r:5000": {"auth": BASE64.encode("AWS:pw")}}})
        );
        assert_eq!(
            merge_docker_config(Some(" \n"), "r", "u", &Secret::new("p".into())).unwrap(),
            fresh
                .replace("r:5000", "r")
                .replace(&BASE64.encode("AWS:pw"), &BASE64.encode("u:p"))
        );
        for (bad, problem) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"auths": []}"#, "its `auths` is not a JSON object"),
        ] {
            let e = merge_docker_config(Some(bad), "r", "u", &Secret::new("p".into())).unwrap_err();
            assert!(e.starts_with(problem), "{bad}: {e}");
        }
    }

    #[test]
    fn a_credential_helper_for_the_registry_earns_a_note() {
        let with_store = merge_docker_config(
            Some(r#"{"credsStore": "desktop"}"#),
            "r:5000",
            "u",
            &Secret::new("p".into()),
        )
        .unwrap();
        let note = helper_note(&with_store, "r:5000").unwrap();
        assert!(note.contains("docker-credential-desktop"), "{note}");
        let other_host = merge_docker_config(
            Some(r#"{"credHelpers": {"gcr.io": "gcloud"}}"#),
            "r:5000",
            "u",
            &Secret::new("p".into()),
        )
        .unwrap();
        assert_eq!(helper_note(&other_host, "r:5000"), None);
    }

    #[test]
    fn auto_prefers_a_docker_daemon_then_podman_then_the_file() {
        assert_eq!(auto_method(Some(true), true), Method::Docker);
        assert_eq!(auto_method(Some(false), true), Method::Podman);
        assert_eq!(auto_method(None, true), Method::Podman);
        assert_eq!(auto_method(Some(false), false), Method::ConfigFile);
        assert_eq!(auto_method(None, false), Method::ConfigFile);
    }

    #[test]
    fn programs_are_found_on_path_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("docker"), "").unwrap();
        std::fs::write(b.join("docker"), "").unwrap();
        std::fs::set_permissions(b.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            find_on_path("docker", path.to_str()),
            Some(b.join("docker"))
        );
        assert_eq!(find_on_path("podman", path.to_str()), None);
        assert_eq!(find_on_path("docker", None), None);
    }
}
