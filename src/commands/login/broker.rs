//! The broker protocol as `login` speaks it: serve's URLs (held to the
//! one URL rule), the credentials request, and what an answer means: a
//! grant checked before anything of it is printed or used, or a refusal
//! that says what to change.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use hyper::StatusCode;
use serde_json::Value;

use crate::auth::AccessKind;
use crate::naming::ProjectName;
use crate::secret::Secret;

/// One HTTP request (the CI token, the broker) may take this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Answers are read up to this size: a token or a credentials document.
const MAX_BODY: usize = 64 * 1024;
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
pub(super) fn url_problem(why: crate::https::UrlProblem) -> String {
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
pub(super) fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

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

/// `GET url` with `Authorization: {authorization}` (marked sensitive, so
/// hyper never logs it), over http or https with the system's roots.
/// The error is one line, without the URL.
pub(super) async fn get(url: &str, authorization: &str) -> Result<crate::https::Reply, String> {
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

/// What to do after one answer of the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
    /// Ask again after this long.
    Wait(Duration),
    /// Give up: the answer is final.
    Stop,
}

/// The wait before asking a busy or unreachable broker again: its
/// `Retry-After` (whole seconds) when it gave one, else 1, 2, 4 … 16 s by
/// attempt; `Stop` for every other answer, and when the wait would end
/// after `left`.
pub(super) fn next(
    status: Option<StatusCode>,
    retry_after: Option<&str>,
    attempt: u32,
    left: Duration,
) -> Next {
    let backoff = Duration::from_secs(1 << attempt.saturating_sub(1).min(4));
    let wait = match status {
        // No answer at all: the broker may be restarting.
        None => backoff,
        Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) => retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(backoff, |s| Duration::from_secs(s.max(1))),
        Some(_) => return Next::Stop,
    };
    if wait > left {
        Next::Stop
    } else {
        Next::Wait(wait)
    }
}

/// The broker's credentials for `ask`, asking again while it is busy (429,
/// 503, honouring `Retry-After`) or cannot be reached (backing off), up to
/// `timeout`; one line on `log` per wait. Any other refusal is final at
/// once.
pub(super) async fn ask_broker(
    ask: &Ask<'_>,
    token: &Secret<String>,
    timeout: Duration,
    log: &mut dyn std::io::Write,
) -> Result<Grant> {
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (error, status, retry_after) = match ask_once(ask, token).await {
            Ok(grant) => return Ok(grant),
            Err(failure) => failure,
        };
        let left = timeout.saturating_sub(started.elapsed());
        match next(status, retry_after.as_deref(), attempt, left) {
            Next::Stop
                if status.is_none_or(|s| {
                    s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::SERVICE_UNAVAILABLE
                }) && attempt > 1 =>
            {
                return Err(error.context(format!(
                    "gave up after {} s and {attempt} attempts (--timeout {} s)",
                    started.elapsed().as_secs(),
                    timeout.as_secs()
                )));
            }
            Next::Stop => return Err(error),
            Next::Wait(wait) => {
                let first = format!("{error:#}");
                let first = first.lines().next().unwrap_or_default();
                let _ = writeln!(
                    log,
                    "{}; asking again in {} s ({} of --timeout {} s spent)",
                    first.trim_start_matches("error: "),
                    wait.as_secs(),
                    started.elapsed().as_secs(),
                    timeout.as_secs()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One request to the broker: the grant, or the error with the status
/// (`None`: no answer) and `Retry-After` it came with.
async fn ask_once(
    ask: &Ask<'_>,
    token: &Secret<String>,
) -> std::result::Result<Grant, (anyhow::Error, Option<StatusCode>, Option<String>)> {
    let url = credentials_url(ask.base, ask.project, ask.access);
    let answer = get(&url, &format!("Bearer {}", token.expose()))
        .await
        .map_err(|cause| {
            (
                anyhow!(
                    "cannot reach the broker at {}: {cause}\n  hint: check --server (scheme, host and port) and that serve runs and is reachable from here",
                    ask.base
                ),
                None,
                None,
            )
        })?;
    if answer.status != StatusCode::OK {
        let retry_after = answer
            .header(hyper::header::RETRY_AFTER)
            .map(str::to_string);
        let refusal = broker_refusal(ask, answer.status, retry_after.as_deref(), &answer.body);
        // A broker (or a proxy before it) that echoes the request would
        // put the caller token on stderr, into the CI log.
        let text = format!("{refusal:#}");
        let secret = token.expose();
        let error = if !secret.is_empty() && text.contains(secret.as_str()) {
            anyhow!("{}", text.replace(secret.as_str(), "[REDACTED]"))
        } else {
            refusal
        };
        return Err((error, Some(answer.status), retry_after));
    }
    parse_grant(&answer.body).map_err(|e| {
        (
            anyhow!(
                "{e}\n  hint: is --server {} a rise-registry serve?",
                ask.base
            ),
            Some(answer.status),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
    fn urls_are_built_from_checked_parts() {
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
    fn a_busy_or_unreachable_broker_is_asked_again_as_long_as_time_is_left() {
        let left = Duration::from_secs(120);
        let busy = Some(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            next(busy, Some("7"), 1, left),
            Next::Wait(Duration::from_secs(7))
        );
        assert_eq!(
            next(Some(StatusCode::TOO_MANY_REQUESTS), Some(" 3 "), 1, left),
            Next::Wait(Duration::from_secs(3))
        );
        // No (or no usable) Retry-After, or no answer at all: 1, 2, 4, … 16 s.
        assert_eq!(
            next(busy, None, 1, left),
            Next::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            next(busy, Some("soon"), 3, left),
            Next::Wait(Duration::from_secs(4))
        );
        assert_eq!(
            next(None, None, 9, left),
            Next::Wait(Duration::from_secs(16))
        );
        assert_eq!(
            next(busy, Some("0"), 1, left),
            Next::Wait(Duration::from_secs(1))
        );
        // A wait past the timeout, and every other answer: stop.
        assert_eq!(next(busy, Some("121"), 1, left), Next::Stop);
        assert_eq!(next(None, None, 1, Duration::ZERO), Next::Stop);
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
            StatusCode::BAD_REQUEST,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK,
        ] {
            assert_eq!(
                next(Some(status), Some("1"), 1, left),
                Next::Stop,
                "{status}"
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
}
