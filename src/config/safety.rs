//! Rules that keep the repository's example values out of real
//! deployments, and the recommendations `config --check` prints.
//!
//! The example config carries an HS256 secret so that a fresh checkout
//! runs with no environment; anyone who has read the repository can mint
//! tokens with it. serve accepts it only where nobody else can reach: run
//! mode `development`, listening on loopback only.

use std::net::SocketAddr;

use super::model::{AuthConfig, Config};

/// Every HS256 secret the example config in `config/` ships. A test reads
/// those files, so a new example secret cannot be added without it.
pub(crate) const SHIPPED_HS256_SECRETS: &[&str] =
    &["insecure-development-secret-change-me-0123456789"];

/// The one run mode in which a shipped secret is tolerated (on loopback).
pub(crate) const DEVELOPMENT_RUN_MODE: &str = "development";

/// Why serve will not start with this configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "auth.hs256_secret is the development secret published in this repository's example config; anyone could mint tokens with it\n  hint: set RISE_JWT_SECRET (e.g. `openssl rand -base64 48`) or your own auth.hs256_secret; the published one is accepted only in run mode `development` listening on loopback{why}"
)]
pub struct ShippedSecret {
    why: String,
}

/// Refuses a shipped HS256 secret unless the run mode is `development` and
/// every address serve listens on is loopback.
///
/// # Errors
/// [`ShippedSecret`], saying which condition failed.
pub(crate) fn check_serve_secret(
    auth: &AuthConfig,
    run_mode: &str,
    listen: &[SocketAddr],
) -> Result<(), ShippedSecret> {
    let Some(secret) = &auth.hs256_secret else {
        return Ok(());
    };
    if !SHIPPED_HS256_SECRETS.contains(&secret.expose().as_str()) {
        return Ok(());
    }
    let exposed: Vec<String> = listen
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(ToString::to_string)
        .collect();
    let why = if run_mode != DEVELOPMENT_RUN_MODE {
        format!(" (the run mode is `{run_mode}`)")
    } else if !exposed.is_empty() {
        format!(" (listening on {})", exposed.join(", "))
    } else {
        return Ok(());
    };
    Err(ShippedSecret { why })
}

/// Settings that are valid but weaker than they should be, for
/// `config --check` to recommend (errors are the loader's job).
pub fn recommendations(config: &Config) -> Vec<String> {
    let auth = &config.auth;
    let mut out = Vec::new();
    if auth.hs256_secret.is_some() {
        for (key, value, claim) in [
            ("issuer", &auth.issuer, "iss"),
            ("audience", &auth.audience, "aud"),
        ] {
            if value.is_none() {
                out.push(format!(
                    "auth.{key} is not set, so HS256 tokens for any {key} are accepted; set it to what your tokens carry in `{claim}`"
                ));
            }
        }
    }
    // Patterns whose literal part is only separators tell almost nothing
    // apart, even beside a pinned tenant.
    for project in &config.projects {
        let lists = [
            ("access", &project.access),
            ("pull_access", &project.pull_access),
        ];
        for (list, rules) in lists {
            for (i, rule) in rules.iter().enumerate() {
                let crate::access::AccessRule::Workload(rule) = rule else {
                    continue;
                };
                for (claim, patterns) in &rule.claims_like {
                    for pattern in patterns.iter().filter(|p| p.only_separators()) {
                        out.push(format!(
                            "projects[{}].{list}[{i}].claims_like.{claim}: `{pattern}` has only separators besides its wildcards, so it matches almost any value; name the values it should match",
                            project.name
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn auth(secret: &str) -> AuthConfig {
        AuthConfig {
            issuer: None,
            audience: None,
            hs256_secret: Some(Secret::new(secret.to_string())),
            jwks_url: None,
            groups_claim: "groups".into(),
            admins: vec![],
            project_managers: vec![],
            jwks_min_refresh_seconds: 30,
            max_token_lifetime_seconds: 86_400,
            allow_unverified_email: false,
            issuers: vec![],
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_shipped_secret_serves_only_development_on_loopback() {
        let shipped = auth(SHIPPED_HS256_SECRETS[0]);
        let loopback = [addr("127.0.0.1:3000"), addr("[::1]:3000")];
        assert_eq!(
            check_serve_secret(&shipped, "development", &loopback),
            Ok(())
        );
        for (mode, listen, why) in [
            ("prod", &[addr("127.0.0.1:3000")][..], "run mode is `prod`"),
            ("idp", &[addr("127.0.0.1:3000")][..], "run mode is `idp`"),
            (
                "development",
                &[addr("0.0.0.0:3000")][..],
                "listening on 0.0.0.0:3000",
            ),
            (
                "development",
                &[addr("127.0.0.1:1"), addr("10.0.0.1:3000")][..],
                "10.0.0.1:3000",
            ),
        ] {
            let e = check_serve_secret(&shipped, mode, listen)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{mode} {listen:?}: {e}");
            assert!(e.contains("RISE_JWT_SECRET"), "{e}");
            assert!(
                !e.contains(SHIPPED_HS256_SECRETS[0]),
                "never print the secret: {e}"
            );
        }
        let own = auth("an-operator-chosen-secret-of-enough-length");
        assert_eq!(
            check_serve_secret(&own, "prod", &[addr("0.0.0.0:3000")]),
            Ok(())
        );
    }

    /// Every `hs256_secret` in the shipped config files, literal or as a
    /// `${VAR:-default}`, is one serve knows to refuse.
    #[test]
    fn every_secret_in_the_example_config_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut found = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // Layer files only: a development store (`.dev-store.sqlite`)
            // may sit beside them.
            if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let Some((_, value)) = line.split_once("hs256_secret:") else {
                    continue;
                };
                let value = value.split(" #").next().unwrap().trim();
                let literal = match value.strip_prefix("${") {
                    Some(var) => match var.trim_end_matches('}').split_once(":-") {
                        Some((_, default)) => default,
                        None => continue, // no default: the operator's own
                    },
                    None => value,
                };
                assert!(
                    SHIPPED_HS256_SECRETS.contains(&literal),
                    "{}: `{literal}` is not in SHIPPED_HS256_SECRETS",
                    path.display()
                );
                found += 1;
            }
        }
        assert!(found >= 1, "the development config ships a secret");
    }

    #[test]
    fn hs256_without_issuer_or_audience_is_recommended_against() {
        let text = "registry: {type: oci-client-auth, registry_url: x}\nauth: {hs256_secret: 0123456789abcdef0123456789abcdef}\n";
        let config = crate::config::load_sources(
            &[crate::config::Source {
                file: "default.yaml".into(),
                text: text.into(),
            }],
            &"dir".into(),
            &|_| None,
        )
        .unwrap();
        let advice = recommendations(&config);
        assert_eq!(advice.len(), 2, "{advice:?}");
        assert!(advice[0].starts_with("auth.issuer is not set"));
        assert!(advice[1].starts_with("auth.audience is not set"));
    }
}
