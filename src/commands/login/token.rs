//! Where `login`'s caller token comes from (a flag, a file, standard
//! input, a variable, or GitHub Actions' OIDC token endpoint), and reading
//! or asking for it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use hyper::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::TokenFlags;
use super::broker::{get, url_problem, without_query};
use crate::commands::Env;
use crate::secret::Secret;

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
pub(super) const GITHUB_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub(super) const GITHUB_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

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

/// GitHub Actions' OIDC token for `audience`.
pub(super) async fn github_token(
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
