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
//! One file per job, each with its decisions as pure functions first and
//! the I/O that acts on them after:
//! - [`token`]: where the caller token comes from, and reading or asking
//!   for it (GitHub Actions' token endpoint);
//! - [`broker`]: the broker's URLs, asking it, and what its answer means;
//! - [`client`]: which login method, and running docker or podman;
//! - the Docker config file is [`crate::docker_config`], shared with
//!   doctor, which reads what login writes.
//!
//! This file holds the flags and [`run`], which strings them together.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use super::{Env, Status};
use crate::auth::AccessKind;
use crate::docker_config;
use crate::naming::ProjectName;
use crate::secret::Secret;

pub mod broker;
pub mod client;
pub mod token;

pub use broker::{Ask, Grant, broker_base, broker_refusal, credentials_url, parse_grant};
pub use client::auto_method;
pub use token::{TokenSource, github_token_url, read_local, token_source};

use broker::ask_broker;
use client::{client_login, docker_answers, find_on_path};
use token::{GITHUB_TOKEN_VAR, GITHUB_URL_VAR, github_token};

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
    /// `--timeout`: how long a busy or unreachable broker is asked again.
    pub timeout: std::time::Duration,
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
    let grant = runtime.block_on(ask_broker(&ask, &token, options.timeout, &mut *env.stderr))?;
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
            let merged =
                docker_config::write(&path, &grant.registry, &grant.username, &grant.password)?;
            if let Some(note) = docker_config::helper_note(&merged, &grant.registry) {
                writeln!(env.stderr, "{note}")?;
            }
            Ok(format!("wrote {}", path.display()))
        }
    }
}

/// Helpers for the tests of login's files.
#[cfg(test)]
mod testing {
    use super::TokenFlags;

    /// Test variables as the `vars` closure commands take.
    pub(super) fn vars_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    pub(super) fn flags() -> TokenFlags {
        TokenFlags::default()
    }

    pub(super) fn err_text(e: anyhow::Error) -> String {
        format!("{e:#}")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

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
            timeout: std::time::Duration::from_secs(120),
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
}
