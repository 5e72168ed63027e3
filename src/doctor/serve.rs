//! The checks of what serve depends on and of a running serve, decided
//! from what the live side saw: each trusted issuer's keys as fetched, and
//! serve's answers to `/healthz`, `/readyz` and a credentials request.
//! Pure; each function returns the [`Check`] it decides.

use hyper::StatusCode;

use super::Check;
use crate::config::{AuthConfig, IssuerRef, Location};
use crate::naming::ProjectName;

/// The config key that decides where an issuer's keys are, for the fix:
/// `auth.jwks_url` for the single-issuer keys, else the entry's `jwks_url`
/// or (keys found by discovery) its `issuer`.
pub fn issuer_key_setting(auth: &AuthConfig, issuer: IssuerRef<'_>) -> String {
    match issuer {
        IssuerRef::Single(_) => "auth.jwks_url".to_string(),
        IssuerRef::Listed(l) => {
            let at = auth.issuers.iter().position(|x| x.name == l.name);
            let field = if l.jwks_url.is_some() {
                "jwks_url"
            } else {
                "issuer"
            };
            format!("auth.issuers[{}].{field}", at.unwrap_or_default())
        }
    }
}

/// One issuer's keys, fetched as serve fetches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKeys {
    pub name: String,
    /// [`issuer_key_setting`].
    pub setting: String,
    /// Where they were fetched from (the JWKS or discovery URL).
    pub location: String,
    /// How many usable keys came, or why none did.
    pub fetched: Result<usize, String>,
}

/// The issuer serves its signing keys.
pub fn issuer_keys(seen: &IssuerKeys) -> Check {
    const ID: &str = "auth.issuer_keys";
    let title = format!("issuer `{}` serves its signing keys", seen.name);
    match &seen.fetched {
        Ok(n) => Check::pass(
            ID,
            title,
            format!("{n} RS256/ES256 key(s) from {}", seen.location),
        ),
        Err(e) => Check::fail(
            ID,
            title,
            e.clone(),
            format!(
                "check `{}` and that serve can reach it; until it answers, serve refuses this issuer's tokens (401)",
                seen.setting
            ),
        ),
    }
}

/// An HTTP answer from serve: the status and the body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// Why the checks of a serve that does not answer did not run.
const NOT_ALIVE: &str = "serve did not answer /healthz";

/// Serve at `base` answers `/healthz`: the status, or why no answer came.
/// Only when this passes are its other endpoints asked.
pub fn healthz(base: &str, seen: &Result<StatusCode, String>, inv: &Location) -> Check {
    const ID: &str = "serve.healthz";
    let title = "serve answers /healthz";
    match seen {
        Ok(status) if *status == StatusCode::OK => {
            Check::pass(ID, title, format!("{base}/healthz answered 200"))
        }
        Ok(status) => Check::fail(
            ID,
            title,
            format!("{base}/healthz answered {status}"),
            "--url must be serve's base URL (server.listen, or server.metrics_listen)",
        ),
        Err(e) => Check::fail(
            ID,
            title,
            e.clone(),
            format!("start serve (`{}`) or correct --url", inv.command("serve")),
        ),
    }
}

/// Serve is ready: its `/readyz` answer, `None` when it was not asked
/// (serve did not answer `/healthz`).
pub fn readyz(seen: Option<&Result<Answer, String>>) -> Check {
    const ID: &str = "serve.readyz";
    let title = "serve is ready (/readyz)";
    match seen {
        None => Check::skipped(ID, title, NOT_ALIVE),
        Some(Ok(r)) if r.status == StatusCode::OK => Check::pass(ID, title, "200"),
        Some(Ok(r)) => Check::fail(
            ID,
            title,
            format!("{} {}", r.status, r.body.trim()),
            "serve cannot reach its registry provider: its log says why; doctor without --url checks the registry side",
        ),
        Some(Err(e)) => Check::fail(
            ID,
            title,
            e.clone(),
            "serve stopped answering: check its log",
        ),
    }
}

/// Serve issues credentials for `project` to the token: its answer to
/// `/registry/credentials`, `None` when it was not asked (serve did not
/// answer `/healthz`). A refusal's fix follows its error code.
pub fn credentials(project: &ProjectName, seen: Option<&Result<Answer, String>>) -> Check {
    const ID: &str = "serve.credentials";
    let title = "serve issues credentials for the project";
    let check = match seen {
        None => Check::skipped(ID, title, NOT_ALIVE),
        Some(Ok(r)) if r.status == StatusCode::OK => {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            Check::pass(
                ID,
                title,
                format!("image {}", body["image"].as_str().unwrap_or("?")),
            )
        }
        Some(Ok(r)) => {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            let code = body["error"]["code"].as_str().unwrap_or("");
            let message = body["error"]["message"].as_str().unwrap_or("");
            let hint = match code {
                "invalid_token" | "missing_token" => "the token was refused: the message says which rule failed (expiry, issuer, audience, key); see auth.* in the config".to_string(),
                "project_not_found" => format!("no rule of projects[{project}].access admits the token (its identities, or a CI token's issuer and claims), and it is not in auth.admins"),
                "registry_unavailable" => "serve could not issue credentials: its audit line's `reason` says why; doctor without --url checks the registry side".to_string(),
                "rate_limited" => "wait for Retry-After, or raise server.rate_limit".to_string(),
                _ => "see serve's log and audit line".to_string(),
            };
            Check::fail(ID, title, format!("{} {code}: {message}", r.status), hint)
        }
        Some(Err(e)) => Check::fail(
            ID,
            title,
            e.clone(),
            "serve stopped answering: check its log",
        ),
    };
    check.for_project(project.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::*;
    use crate::config::{Source, load_sources};
    use std::path::Path;
    use std::sync::Arc;

    fn inv() -> Location {
        Location::new(Path::new("config"), "development")
    }

    fn p(s: &str) -> ProjectName {
        ProjectName::parse(s).unwrap()
    }

    fn auth() -> AuthConfig {
        let text = "registry:\n  type: ecr\n  region: us-east-1\n  account_id: '123456789012'\n  \
             repo_prefix: rise/\n  role_arn: arn:aws:iam::123456789012:role/ctl\n  \
             push_role_arn: arn:aws:iam::123456789012:role/push\n\
             auth:\n  issuer: https://idp.example\n  audience: rise\n  \
             jwks_url: https://idp.example/keys\n  issuers:\n    \
             - name: github\n      issuer: https://token.actions.githubusercontent.com\n      \
             audience: rise\n    \
             - name: own\n      issuer: https://own.example\n      audience: rise\n      \
             jwks_url: https://own.example/jwks\n"
            .to_string();
        let sources = [Source {
            file: Arc::from("t.yaml"),
            text,
        }];
        load_sources(&sources, &Arc::from("t"), &|_| None)
            .unwrap()
            .auth
    }

    #[test]
    fn the_fix_names_the_key_that_places_the_issuer_s_keys() {
        let auth = auth();
        let settings: Vec<(&str, String)> = auth
            .issuers()
            .map(|i| (i.name(), issuer_key_setting(&auth, i)))
            .collect();
        assert_eq!(
            settings,
            [
                ("default", "auth.jwks_url".to_string()),
                ("github", "auth.issuers[0].issuer".to_string()),
                ("own", "auth.issuers[1].jwks_url".to_string()),
            ]
        );
    }

    #[test]
    fn an_issuer_serves_keys_or_fails_naming_its_setting() {
        let seen = |fetched| IssuerKeys {
            name: "github".into(),
            setting: "auth.issuers[0].issuer".into(),
            location: "https://gh.example/.well-known/openid-configuration".into(),
            fetched,
        };
        let pass = issuer_keys(&seen(Ok(2)));
        assert_eq!((pass.id, pass.outcome), ("auth.issuer_keys", Outcome::Pass));
        assert_eq!(pass.title, "issuer `github` serves its signing keys");
        assert_eq!(
            pass.detail,
            "2 RS256/ES256 key(s) from https://gh.example/.well-known/openid-configuration"
        );
        let fail = issuer_keys(&seen(Err("connection refused".into())));
        assert_eq!(fail.outcome, Outcome::Fail);
        assert_eq!(fail.detail, "connection refused");
        assert_eq!(
            fail.hint.as_deref(),
            Some(
                "check `auth.issuers[0].issuer` and that serve can reach it; until it answers, serve refuses this issuer's tokens (401)"
            )
        );
    }

    #[test]
    fn healthz_passes_on_200_and_says_what_else_it_heard() {
        let base = "http://127.0.0.1:3000";
        let ok = healthz(base, &Ok(StatusCode::OK), &inv());
        assert_eq!((ok.id, ok.outcome), ("serve.healthz", Outcome::Pass));
        assert_eq!(ok.detail, "http://127.0.0.1:3000/healthz answered 200");

        let other = healthz(base, &Ok(StatusCode::NOT_FOUND), &inv());
        assert_eq!(other.outcome, Outcome::Fail);
        assert_eq!(
            other.detail,
            "http://127.0.0.1:3000/healthz answered 404 Not Found"
        );
        assert_eq!(
            other.hint.as_deref(),
            Some("--url must be serve's base URL (server.listen, or server.metrics_listen)")
        );

        let down = healthz(base, &Err("connection refused".into()), &inv());
        assert_eq!(down.outcome, Outcome::Fail);
        assert_eq!(down.detail, "connection refused");
        assert_eq!(
            down.hint.as_deref(),
            Some("start serve (`rise-registry serve`) or correct --url")
        );
    }

    fn answer(status: StatusCode, body: &str) -> Result<Answer, String> {
        Ok(Answer {
            status,
            body: body.into(),
        })
    }

    #[test]
    fn readyz_is_skipped_when_serve_is_down() {
        let skipped = readyz(None);
        assert_eq!(
            (skipped.id, skipped.outcome),
            ("serve.readyz", Outcome::Skipped)
        );
        assert_eq!(skipped.detail, "serve did not answer /healthz");

        let ready = readyz(Some(&answer(StatusCode::OK, "ok")));
        assert_eq!(ready.outcome, Outcome::Pass);
        assert_eq!(ready.detail, "200");

        let not = readyz(Some(&answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry unreachable\n",
        )));
        assert_eq!(not.outcome, Outcome::Fail);
        assert_eq!(not.detail, "503 Service Unavailable registry unreachable");
        assert!(
            not.hint
                .as_deref()
                .unwrap()
                .starts_with("serve cannot reach its registry provider")
        );

        let gone = readyz(Some(&Err("reset".into())));
        assert_eq!(gone.outcome, Outcome::Fail);
        assert_eq!(
            gone.hint.as_deref(),
            Some("serve stopped answering: check its log")
        );
    }

    #[test]
    fn credentials_name_the_image_or_the_refusal_s_fix() {
        let project = p("my-app");
        let skipped = credentials(&project, None);
        assert_eq!(
            (skipped.id, skipped.outcome),
            ("serve.credentials", Outcome::Skipped)
        );
        assert_eq!(skipped.project.as_deref(), Some("my-app"));
        assert_eq!(skipped.detail, "serve did not answer /healthz");

        let issued = credentials(
            &project,
            Some(&answer(
                StatusCode::OK,
                r#"{"image": "localhost:5000/rise-apps/my-app"}"#,
            )),
        );
        assert_eq!(issued.outcome, Outcome::Pass);
        assert_eq!(issued.project.as_deref(), Some("my-app"));
        assert_eq!(issued.detail, "image localhost:5000/rise-apps/my-app");
        let odd = credentials(&project, Some(&answer(StatusCode::OK, "not json")));
        assert_eq!(odd.detail, "image ?");

        let refused = |status, code: &str| {
            let body = format!(r#"{{"error": {{"code": "{code}", "message": "no"}}}}"#);
            credentials(&project, Some(&answer(status, &body)))
        };
        for (status, code, hint) in [
            (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token was refused: the message says which rule failed",
            ),
            (
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "the token was refused: the message says which rule failed",
            ),
            (
                StatusCode::NOT_FOUND,
                "project_not_found",
                "no rule of projects[my-app].access admits the token",
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "registry_unavailable",
                "serve could not issue credentials: its audit line's `reason` says why",
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "wait for Retry-After, or raise server.rate_limit",
            ),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "see serve's log and audit line",
            ),
        ] {
            let check = refused(status, code);
            assert_eq!(check.outcome, Outcome::Fail, "{code}");
            assert_eq!(check.detail, format!("{status} {code}: no"));
            assert!(
                check.hint.as_deref().unwrap().starts_with(hint),
                "{code}: {:?}",
                check.hint
            );
        }
        let bare = credentials(&project, Some(&answer(StatusCode::BAD_GATEWAY, "")));
        assert_eq!(bare.detail, "502 Bad Gateway : ");

        let gone = credentials(&project, Some(&Err("reset".into())));
        assert_eq!(gone.outcome, Outcome::Fail);
        assert_eq!(gone.detail, "reset");
        assert_eq!(
            gone.hint.as_deref(),
            Some("serve stopped answering: check its log")
        );
    }
}
