//! The I/O edge of `doctor`: AWS calls, HTTP requests to registries and to
//! a running serve, the Docker config file and its credential helpers. It
//! records what it saw (answers, statuses, error texts, file contents) as
//! plain values and hands them to the pure checks ([`super::ecr`],
//! [`super::oci`], [`super::serve`]), which decide every outcome, the
//! failures to reach something included. What it decides itself is only
//! which request comes next: a step whose prerequisite failed is not tried.

use std::time::Duration;

use hyper::{HeaderMap, StatusCode};

use super::{Check, Checks, ecr as ecr_checks, oci as oci_checks, serve as serve_checks};
use crate::auth::Caller;
use crate::config::Location;
use crate::config::{Config, EcrConfig, OciClientAuthConfig, OciTokenConfig};
use crate::docker_config;
use crate::naming::ProjectName;
use crate::registry::ecr::EcrProvider;
use crate::registry::oci_token::OciTokenProvider;

/// One HTTP request may take this long, connection included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies are read up to this size (error documents, JSON replies).
const MAX_BODY: usize = 64 * 1024;

/// What the run was asked to do beyond the registry checks.
pub struct Options<'a> {
    pub projects: &'a [ProjectName],
    /// A running serve to check (`--url`), and a token to ask it for
    /// credentials with (`--token`).
    pub url: Option<&'a str>,
    pub token: Option<&'a str>,
    pub location: &'a Location,
    /// The environment, for the Docker config and its helpers.
    pub vars: &'a dyn Fn(&str) -> Option<String>,
}

/// An HTTP answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// `GET url` with `headers`; the error as one line that names the URL.
async fn get(url: &str, headers: &[(&str, String)]) -> Result<Reply, String> {
    let client = crate::https::client()?;
    let headers = headers
        .iter()
        .map(|(name, value)| {
            Ok((
                hyper::header::HeaderName::from_bytes(name.as_bytes())?,
                hyper::header::HeaderValue::from_str(value)?,
            ))
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()
        .map_err(|e| format!("{url}: {e}"))?;
    let limits = crate::https::Limits {
        timeout: HTTP_TIMEOUT,
        max_body: MAX_BODY,
    };
    let reply = crate::https::get(&client, url, &headers, limits)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(Reply {
        status: reply.status,
        body: String::from_utf8_lossy(&reply.body).into_owned(),
        headers: reply.headers,
    })
}

/// `GET {registry}{path}`: a registry named by host alone is asked over
/// HTTPS first and over plain HTTP when that fails, as the Docker CLI does
/// for a local registry. The base URL that answered comes back too.
async fn get_registry(
    registry: &str,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(String, Reply), String> {
    if registry.starts_with("http://") || registry.starts_with("https://") {
        let base = registry.trim_end_matches('/').to_string();
        return get(&format!("{base}{path}"), headers)
            .await
            .map(|r| (base, r));
    }
    let https = format!("https://{registry}");
    match get(&format!("{https}{path}"), headers).await {
        Ok(reply) => Ok((https, reply)),
        Err(_) => {
            let http = format!("http://{registry}");
            get(&format!("{http}{path}"), headers)
                .await
                .map(|r| (http, r))
        }
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------- ecr ---

/// The `ecr` checks, in the order an AWS session flows: who runs this, the
/// controller, what AWS holds, then per project the push role, the login
/// and the registry endpoint.
pub async fn ecr(config: &Config, ecr: &EcrConfig, options: &Options<'_>) -> Vec<Check> {
    let inv = options.location;
    let mut checks = Checks::default();
    let sdk = crate::aws::sdk_config(
        ecr.region.as_str(),
        ecr.endpoint_url.as_deref(),
        crate::aws::Caller::Serve,
    )
    .await;
    let sts = aws_sdk_sts::Client::new(&sdk);

    // Who am I.
    let caller = match sts.get_caller_identity().send().await {
        Ok(out) => ecr_checks::CallerIdentity::Answered(out.arn.unwrap_or_default()),
        Err(e) => ecr_checks::CallerIdentity::Failed {
            error: crate::aws::sdk_error_text(&e),
            cause: crate::aws::Cause::of(&e),
        },
    };
    checks.push(ecr_checks::caller_identity(&caller));
    let caller = caller.arn();

    // The controller: this identity, or one it can become.
    let (controller, controller_sdk) = controller_session(&sts, &sdk, caller, ecr).await;
    checks.push(ecr_checks::controller_role(&controller, ecr));

    // What AWS holds: both roles and the repositories under the prefix.
    let reconciler = match caller {
        Some(_) => Some(crate::reconcile::pipeline::Reconciler::new(ecr, &config.projects).await),
        None => None,
    };
    let read = match &reconciler {
        Some(reconciler) => Some(
            reconciler
                .observe(crate::reconcile::plan::Scope::All, &|_, _| {})
                .await
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    checks.push(ecr_checks::read_state(read.as_ref(), ecr));
    let observed = read.as_ref().and_then(|r| r.as_ref().ok());
    let all_names = match observed {
        Some(_) => repository_names(&sdk).await,
        None => Vec::new(),
    };
    let roles_plan = observed.zip(reconciler.as_ref()).map(|(state, r)| {
        r.plan_observed(state, crate::reconcile::plan::Scope::Roles)
            .map_err(|e| e.to_string())
    });
    checks.push(ecr_checks::roles_match(roles_plan.as_ref(), ecr, inv));
    // One cause, one failure: a push role known to differ is not tried
    // again per project.
    let push_blocker = ecr_checks::push_role_blocker(roles_plan.as_ref());

    checks.extend(ecr_checks::projects_configured(options.projects));
    let provider = controller_sdk
        .as_ref()
        .map(|s| EcrProvider::from_sdk_config(ecr, s));
    let config_projects: Vec<ProjectName> =
        config.projects.iter().map(|p| p.name.clone()).collect();
    for project in options.projects {
        let mut project_checks = ecr_checks::project_state(
            ecr,
            project,
            observed,
            &all_names,
            inv,
            push_blocker.as_deref(),
        );
        project_checks.push(ecr_checks::session_scope(ecr, project, &config_projects));
        let session = match &push_blocker {
            Some(reason) => ecr_checks::PushSession::Blocked(reason.clone()),
            None => push_session(project, provider.as_ref(), caller.is_some()).await,
        };
        project_checks.extend(ecr_checks::push_session(
            &session, ecr, project, observed, inv,
        ));
        checks.extend(
            project_checks
                .into_iter()
                .map(|c| c.for_project(project.as_str())),
        );
    }
    checks.into_vec()
}

/// The controller role's session: the caller's own when it is the
/// controller, else one assumed from it; the SDK config that uses it.
async fn controller_session(
    sts: &aws_sdk_sts::Client,
    sdk: &aws_config::SdkConfig,
    caller: Option<&str>,
    ecr: &EcrConfig,
) -> (ecr_checks::ControllerRole, Option<aws_config::SdkConfig>) {
    use ecr_checks::ControllerRole;
    let Some(arn) = caller else {
        return (ControllerRole::NoCaller, None);
    };
    if ecr_checks::caller_is_controller(arn, ecr) {
        return (ControllerRole::IsCaller, Some(sdk.clone()));
    }
    let assumed = sts
        .assume_role()
        .role_arn(ecr.role_arn.as_str())
        .role_session_name("rise-doctor")
        .duration_seconds(900)
        .send()
        .await;
    match assumed {
        Ok(out) => match out.credentials {
            Some(c) => {
                let creds = aws_sdk_sts::config::Credentials::new(
                    c.access_key_id,
                    c.secret_access_key,
                    Some(c.session_token),
                    None,
                    "rise-doctor-controller",
                );
                let sdk = sdk
                    .to_builder()
                    .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                        creds,
                    ))
                    .build();
                let caller = arn.to_string();
                (ControllerRole::Assumed { caller }, Some(sdk))
            }
            None => (ControllerRole::NoCredentials, None),
        },
        Err(e) => (
            ControllerRole::Refused {
                caller: arn.to_string(),
                error: crate::aws::sdk_error_text(&e),
            },
            None,
        ),
    }
}

/// The push role assumed with the project's session policy, the ECR login
/// with those credentials, and the registry's `/v2/` with that login: what
/// serve does for a credentials request, as far as it gets.
async fn push_session(
    project: &ProjectName,
    provider: Option<&EcrProvider>,
    aws_answered: bool,
) -> ecr_checks::PushSession {
    use ecr_checks::PushSession;
    let Some(provider) = provider else {
        return PushSession::NoController { aws_answered };
    };
    let session = match provider
        .assume_push_role(project, crate::auth::AccessKind::Push)
        .await
    {
        Ok(s) => s,
        Err(e) => return PushSession::AssumeRefused(e.to_string()),
    };
    let (credentials, endpoint) = match provider.login(project, session).await {
        Ok(l) => l,
        Err(e) => return PushSession::LoginRefused(e.to_string()),
    };
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credentials.username,
            credentials.password.expose()
        ))
    };
    let v2 = get_registry(
        &endpoint,
        "/v2/",
        &[("authorization", format!("Basic {basic}"))],
    )
    .await
    .map(|(_, reply)| reply.status);
    PushSession::LoggedIn {
        registry_url: credentials.registry_url.to_string(),
        endpoint,
        v2,
    }
}

/// Every repository name in the registry, any prefix (to spot a prefix
/// mismatch); empty when they cannot be listed.
async fn repository_names(sdk: &aws_config::SdkConfig) -> Vec<String> {
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let mut names = Vec::new();
    let mut pages = ecr.describe_repositories().into_paginator().send();
    while let Some(Ok(page)) = pages.next().await {
        names.extend(
            page.repositories
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.repository_name)
                // The apply lock's repository is no project's, under any
                // prefix.
                .filter(|n| !n.ends_with(crate::reconcile::lock::LOCK_REPOSITORY)),
        );
    }
    names
}

// ---------------------------------------------------------- oci-token ---

/// The `oci-token` checks: key and chain, the registry's challenge, and a
/// token for each project accepted for its repository and refused for
/// another.
pub async fn oci_token(config: &Config, oci: &OciTokenConfig, options: &Options<'_>) -> Vec<Check> {
    let mut checks = Checks::default();
    let key_pem = oci.signing_key_file.read().map_err(|e| e.to_string());
    let chain_pem = oci.certificate_chain_file.read().map_err(|e| e.to_string());
    let key_and_chain =
        oci_checks::key_and_chain(&key_pem, &chain_pem, crate::clock::unix_now(), oci);
    let key_usable = checks.push(key_and_chain.key);
    let in_date = checks.push(key_and_chain.date);

    // The registry's challenge.
    let expected_realm = match options.url {
        Some(url) => format!("{}/registry/token", url.trim_end_matches('/')),
        None => config.server.default_realm(),
    };
    let answer = v2_answer(oci.registry_url.as_str()).await;
    checks.extend(oci_checks::registry_challenge(
        &answer,
        &expected_realm,
        oci,
        options.location,
    ));
    let registry_base = answer.ok().map(|a| a.base);

    let provider = match (key_usable, key_pem, chain_pem) {
        (true, Ok(k), Ok(c)) => OciTokenProvider::from_pem(oci.clone(), &k, &c).ok(),
        _ => None,
    };
    let blocked = oci_checks::token_blocked(
        key_usable,
        in_date,
        registry_base.is_some(),
        provider.is_some(),
    );
    for project in options.projects {
        let probe = match (blocked, &provider, &registry_base) {
            (None, Some(provider), Some(base)) => probe_token(provider, base, project).await,
            // token_blocked names a reason whenever either is missing.
            (reason, _, _) => oci_checks::TokenProbe::Blocked(reason.unwrap_or_default()),
        };
        checks.extend(
            oci_checks::token_checks(&probe, oci, options.location)
                .into_iter()
                .map(|c| c.for_project(project.as_str())),
        );
    }
    checks.into_vec()
}

/// A registry's anonymous answer to `/v2/`.
async fn v2_answer(registry: &str) -> Result<oci_checks::V2Answer, String> {
    let (base, reply) = get_registry(registry, "/v2/", &[]).await?;
    Ok(oci_checks::V2Answer {
        base,
        status: reply.status,
        challenge: header(&reply, "www-authenticate").map(String::from),
    })
}

/// A pull token for the project's repository, as serve would issue it,
/// sent to the registry for that repository and, when accepted there, for
/// one next to it.
async fn probe_token(
    provider: &OciTokenProvider,
    base: &str,
    project: &ProjectName,
) -> oci_checks::TokenProbe {
    use oci_checks::{TokenProbe, TokenRequest};
    let now = crate::clock::unix_now();
    let repository = provider.repository(project);
    let ticket_text = provider.issue_ticket(project, &Caller::from_subject("rise-doctor"), now);
    let Ok(ticket) = provider.verify_ticket(ticket_text.password.expose(), now) else {
        return TokenProbe::TicketBroken;
    };
    let scope = format!("repository:{repository}:pull");
    let token = provider.registry_token(&ticket, [scope.as_str()], now);
    let bearer = [("authorization", format!("Bearer {}", token.token))];
    let tags_list = |repository: &str| {
        let url = format!("{base}/v2/{repository}/tags/list");
        let bearer = &bearer;
        async move { get(&url, bearer).await.map(|r| r.status) }
    };
    let own = TokenRequest {
        answer: tags_list(&repository).await,
        repository: repository.to_string(),
    };
    let elsewhere = match own.answer {
        Ok(status) if oci_checks::token_accepted(status) => {
            let other = format!("{repository}-rise-doctor-probe");
            Some(TokenRequest {
                answer: tags_list(&other).await,
                repository: other,
            })
        }
        _ => None,
    };
    TokenProbe::Sent { own, elsewhere }
}

// ---------------------------------------------------- oci-client-auth ---

/// The `oci-client-auth` checks: the registry answers `/v2/`, and the
/// Docker config here holds credentials for it when it asks for them.
pub async fn oci_client_auth(oci: &OciClientAuthConfig, options: &Options<'_>) -> Vec<Check> {
    let host = oci.registry_url.as_str();
    let answer = v2_answer(host).await;
    let docker = docker_credentials(host, options.vars).await;
    oci_checks::client_auth(host, &answer, &docker)
}

/// What the Docker config holds for `host`, asking the credential helper
/// it names.
async fn docker_credentials(
    host: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> oci_checks::DockerCredentials {
    use oci_checks::DockerCredentials;
    let Some(path) = docker_config::config_path(vars) else {
        return DockerCredentials::NoConfig;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let error = e.to_string();
            return DockerCredentials::Unreadable { path, error };
        }
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return DockerCredentials::NotJson { path };
    };
    match docker_config::credentials_for(&json, host) {
        docker_config::Source::Auths(key) => DockerCredentials::Auths { path, key },
        docker_config::Source::Nothing => DockerCredentials::Nothing { path },
        docker_config::Source::Helper { name, key } => {
            let holds = run_helper(&format!("docker-credential-{name}"), host, vars).await;
            DockerCredentials::Helper {
                path,
                name,
                key,
                holds,
            }
        }
    }
}

/// Asks a credential helper for `host` (`get`, the host on stdin), as the
/// Docker CLI does: whether it has credentials (the secret is not kept).
async fn run_helper(
    helper: &str,
    host: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    let path = vars("PATH").unwrap_or_default();
    let program = std::env::split_paths(&path)
        .map(|dir| dir.join(helper))
        .find(|p| p.is_file())
        .ok_or_else(|| "not found on PATH".to_string())?;
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .env_clear()
        .env("PATH", &path)
        .envs(vars("HOME").map(|h| ("HOME", h)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot be run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(host.as_bytes()).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| "did not answer within 10s".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Ok(false);
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(json["Secret"].as_str().is_some_and(|s| !s.is_empty()))
}

// -------------------------------------------------------------- serve ---

/// Each trusted issuer with keys to fetch (a `jwks_url`, or an
/// `auth.issuers` entry found by discovery) serves them: fetched as serve
/// fetches them, discovery document included. Issuers with only a shared
/// secret have nothing to fetch.
pub async fn issuers(config: &Config) -> Vec<Check> {
    use crate::auth::jwks::{JwksSource, KeyLocation};
    let mut checks = Checks::default();
    for issuer in config.auth.issuers() {
        let Some(location) = KeyLocation::of(issuer) else {
            continue;
        };
        let fetched = match JwksSource::new(location.clone(), std::time::Duration::ZERO) {
            Ok(source) => source.refresh().await.map(|()| source.keys().len()),
            Err(e) => Err(e),
        };
        checks.push(serve_checks::issuer_keys(&serve_checks::IssuerKeys {
            name: issuer.name().to_string(),
            setting: serve_checks::issuer_key_setting(&config.auth, issuer),
            location: location.to_string(),
            fetched: fetched.map_err(|e| format!("{e:#}")),
        }));
    }
    checks.into_vec()
}

/// A running serve at `url`: alive, ready, and (with a token) issuing
/// credentials for each project.
pub async fn serve(url: &str, options: &Options<'_>) -> Vec<Check> {
    let base = url.trim_end_matches('/');
    let mut checks = Checks::default();
    let health = get(&format!("{base}/healthz"), &[]).await.map(|r| r.status);
    let alive = checks.push(serve_checks::healthz(base, &health, options.location));
    let answer = |r: Reply| serve_checks::Answer {
        status: r.status,
        body: r.body,
    };
    let ready = if alive {
        Some(get(&format!("{base}/readyz"), &[]).await.map(answer))
    } else {
        None
    };
    checks.push(serve_checks::readyz(ready.as_ref()));
    let Some(token) = options.token else {
        return checks.into_vec();
    };
    for project in options.projects {
        let reply = if alive {
            let url = format!("{base}/registry/credentials?project={project}");
            let bearer = [("authorization", format!("Bearer {token}"))];
            Some(get(&url, &bearer).await.map(answer))
        } else {
            None
        };
        checks.push(serve_checks::credentials(project, reply.as_ref()));
    }
    checks.into_vec()
}
