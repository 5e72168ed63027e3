//! The checks of the two OCI registry types, decided from what the live
//! side saw: for `oci-token` the key and chain files, the registry's
//! challenge and its answers to a token; for `oci-client-auth` the
//! registry's answer to `/v2/` and the Docker config with its credential
//! helper. Pure; each function returns the [`Check`]s it decides.

use std::path::PathBuf;

use hyper::StatusCode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{Check, certs};
use crate::config::{Location, OciTokenConfig};

/// What a registry answered to `GET /v2/` without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Answer {
    /// The base URL that answered: `https://host`, or `http://host` when
    /// HTTPS failed.
    pub base: String,
    pub status: StatusCode,
    /// Its `WWW-Authenticate` header.
    pub challenge: Option<String>,
}

/// `Bearer realm="…",service="…",scope="…"` → the value of `key`.
pub(crate) fn challenge_param(challenge: &str, key: &str) -> Option<String> {
    let rest = challenge.trim().strip_prefix("Bearer ")?;
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            return None;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        if name.trim().eq_ignore_ascii_case(key) {
            return Some(value);
        }
    }
}

/// "Connection refused" and its kind: the registry's own section of the
/// operator guide.
fn registry_down_hint(key: &str) -> String {
    format!(
        "start the registry and check {key}; with the compose setup: `docker compose ps registry`, `docker compose logs registry`, `docker compose restart registry`"
    )
}

// ---------------------------------------------------------- oci-token ---

/// The config keys that name the signing key and the chain, as the fixes
/// spell them (a config built without files has no key).
pub fn key_file_keys(oci: &OciTokenConfig) -> (&str, &str) {
    let key = &oci.signing_key_file.key;
    let chain = &oci.certificate_chain_file.key;
    (
        if key.is_empty() {
            "registry.signing_key_file"
        } else {
            key
        },
        if chain.is_empty() {
            "registry.certificate_chain_file"
        } else {
            chain
        },
    )
}

/// The signing key's and the chain's checks. A token can be signed only
/// when `key` passed, and the registry accepts it only when `date` passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAndChain {
    pub key: Check,
    pub date: Check,
}

/// The signing key matches the chain's leaf and the chain is in date at
/// `now`, from the two files' contents (or why each could not be read).
pub fn key_and_chain(
    key_pem: &Result<Vec<u8>, String>,
    chain_pem: &Result<Vec<u8>, String>,
    now: i64,
    oci: &OciTokenConfig,
) -> KeyAndChain {
    let (key_key, chain_key) = key_file_keys(oci);
    match (key_pem, chain_pem) {
        (Ok(key_pem), Ok(chain_pem)) => {
            let (key, _) = certs::key_matches_chain(key_pem, chain_pem, key_key, chain_key);
            let ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(chain_pem)
                .filter_map(Result::ok)
                .map(|c| c.as_ref().to_vec())
                .collect();
            let date = certs::chain_in_date(&ders, now, chain_key);
            KeyAndChain { key, date }
        }
        (k, c) => {
            let problems: Vec<&str> = [k.as_ref().err(), c.as_ref().err()]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            KeyAndChain {
                key: Check::fail(
                    "oci_token.key_matches_chain",
                    "the signing key matches the chain's leaf",
                    problems.join("; "),
                    format!(
                        "{key_key} and {chain_key} must name readable files (`rise-registry oci-token dev-ca --out DIR` writes a development pair)"
                    ),
                ),
                date: Check::skipped(
                    "oci_token.chain_in_date",
                    "the certificate chain is in date",
                    "the chain could not be read",
                ),
            }
        }
    }
}

/// The registry answers `/v2/` with a Bearer challenge whose realm and
/// service are rise-registry's (`expected_realm`, `registry.service`).
pub fn registry_challenge(
    answer: &Result<V2Answer, String>,
    expected_realm: &str,
    oci: &OciTokenConfig,
    inv: &Location,
) -> Vec<Check> {
    const ANSWERS: &str = "oci_token.registry_answers";
    const REALM: &str = "oci_token.realm";
    let answers_title = "the registry answers /v2/ and asks for a token";
    let realm_title = "the registry's realm and service are rise-registry's";
    let answer = match answer {
        Err(e) => {
            return vec![
                Check::fail(
                    ANSWERS,
                    answers_title,
                    e.clone(),
                    registry_down_hint("registry.registry_url"),
                ),
                Check::skipped(REALM, realm_title, "the registry did not answer"),
            ];
        }
        Ok(answer) => answer,
    };
    let base = &answer.base;
    let challenge = answer.challenge.as_deref().unwrap_or("");
    let realm_hint = format!(
        "the registry's config.yml must have auth.token with realm {expected_realm} and service {}: `{}` prints the block; restart the registry after changing it",
        oci.service,
        inv.command(&format!(
            "oci-token registry-config --realm {expected_realm}"
        ))
    );
    if answer.status != StatusCode::UNAUTHORIZED || !challenge.starts_with("Bearer ") {
        return vec![
            Check::fail(
                ANSWERS,
                answers_title,
                format!(
                    "{base}/v2/ answered {} without a Bearer challenge ({challenge:?})",
                    answer.status
                ),
                realm_hint,
            ),
            Check::skipped(REALM, realm_title, "the registry asks for no token"),
        ];
    }
    let realm = challenge_param(challenge, "realm").unwrap_or_default();
    let service = challenge_param(challenge, "service").unwrap_or_default();
    let mut wrong = Vec::new();
    if realm != expected_realm {
        wrong.push(format!(
            "realm is {realm}, rise-registry's is {expected_realm}"
        ));
    }
    if service != oci.service {
        wrong.push(format!(
            "service is `{service}`, registry.service is `{}`",
            oci.service
        ));
    }
    vec![
        Check::pass(
            ANSWERS,
            answers_title,
            format!("{base}/v2/ answered 401 with a Bearer challenge"),
        ),
        if wrong.is_empty() {
            Check::pass(
                REALM,
                realm_title,
                format!("realm {realm}, service {service}"),
            )
        } else {
            Check::fail(REALM, realm_title, wrong.join("; "), realm_hint)
        },
    ]
}

/// Why no token can be tried against the registry, if there is a reason:
/// the key checks failed, the registry did not answer, or (the key
/// matching) the token provider could not be built from it.
pub fn token_blocked(
    key_usable: bool,
    in_date: bool,
    registry_answered: bool,
    provider_built: bool,
) -> Option<&'static str> {
    if !key_usable {
        Some("no usable signing key")
    } else if !in_date {
        Some("the certificate chain is not in date")
    } else if !registry_answered {
        Some("the registry did not answer")
    } else if !provider_built {
        Some("no usable signing key")
    } else {
        None
    }
}

/// The registry accepted a token for a repository: it listed its tags, or
/// said it has none (a repository nothing was pushed to yet).
pub fn token_accepted(status: StatusCode) -> bool {
    status == StatusCode::OK || status == StatusCode::NOT_FOUND
}

/// One `GET /v2/{repository}/tags/list` with a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub repository: String,
    /// The status, or why no answer came.
    pub answer: Result<StatusCode, String>,
}

/// How far a project's token got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProbe {
    /// Not tried, for this reason ([`token_blocked`]).
    Blocked(&'static str),
    /// A ticket just issued did not verify, so no token was made.
    TicketBroken,
    /// A pull token for the project's repository, sent for it (`own`) and,
    /// only when accepted there ([`token_accepted`]), for a repository
    /// next to it (`elsewhere`).
    Sent {
        own: TokenRequest,
        elsewhere: Option<TokenRequest>,
    },
}

/// The registry accepts a project's token for its repository and refuses
/// it for another.
pub fn token_checks(probe: &TokenProbe, oci: &OciTokenConfig, inv: &Location) -> Vec<Check> {
    const ACCEPTED: &str = "oci_token.token_accepted";
    const REFUSED: &str = "oci_token.token_refused_elsewhere";
    let accept_title = "the registry accepts a token for the project's repository";
    let refuse_title = "the registry refuses that token for another repository";
    let (own, elsewhere) = match probe {
        TokenProbe::Blocked(reason) => {
            return vec![
                Check::skipped(ACCEPTED, accept_title, *reason),
                Check::skipped(REFUSED, refuse_title, *reason),
            ];
        }
        TokenProbe::TicketBroken => {
            return vec![Check::fail(
                ACCEPTED,
                accept_title,
                "a ticket just issued does not verify",
                "report it: this build's tickets are broken",
            )];
        }
        TokenProbe::Sent { own, elsewhere } => (own, elsewhere),
    };
    let (key_key, chain_key) = key_file_keys(oci);
    let repository = &own.repository;
    let accepted = match &own.answer {
        Ok(status) if token_accepted(*status) => {
            Check::pass(ACCEPTED, accept_title, format!("{repository}: {status}"))
        }
        Ok(status) => Check::fail(
            ACCEPTED,
            accept_title,
            format!(
                "{repository}: the registry answered {status} to a token signed with {key_key}"
            ),
            format!(
                "the registry's auth.token.rootcertbundle must hold the root of {chain_key} (`{}` writes it) and its auth.token.issuer must be `{}`; restart the registry after changing them; its log (log.level: info) says which check failed",
                inv.command("oci-token registry-config --bundle-out FILE"),
                oci.issuer
            ),
        ),
        Err(e) => Check::fail(
            ACCEPTED,
            accept_title,
            e.clone(),
            registry_down_hint("registry.registry_url"),
        ),
    };
    let refused = match elsewhere {
        None => Check::skipped(
            REFUSED,
            refuse_title,
            "the token was not accepted for its own repository",
        ),
        Some(other) => {
            let name = &other.repository;
            match &other.answer {
                Ok(status)
                    if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN =>
                {
                    Check::pass(REFUSED, refuse_title, format!("{name}: {status}"))
                }
                Ok(status) => Check::fail(
                    REFUSED,
                    refuse_title,
                    format!("{name}: the registry answered {status} to a token for {repository}"),
                    "the registry does not check the token's access claim: configure token authentication (auth.token in its config.yml) and nothing else in front of it",
                ),
                Err(e) => Check::fail(
                    REFUSED,
                    refuse_title,
                    e.clone(),
                    registry_down_hint("registry.registry_url"),
                ),
            }
        }
    };
    vec![accepted, refused]
}

// ---------------------------------------------------- oci-client-auth ---

/// What the Docker config here holds for a host, as the Docker CLI would
/// find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerCredentials {
    /// Neither DOCKER_CONFIG nor HOME is set: there is no config to read.
    NoConfig,
    /// The config file could not be read (it is absent, most often).
    Unreadable {
        path: PathBuf,
        error: String,
    },
    NotJson {
        path: PathBuf,
    },
    /// `auths` holds a login under `key`.
    Auths {
        path: PathBuf,
        key: String,
    },
    /// Nothing names the host.
    Nothing {
        path: PathBuf,
    },
    /// `key` names `docker-credential-{name}`, which was asked: whether it
    /// holds credentials for the host, or why it could not be asked.
    Helper {
        path: PathBuf,
        name: String,
        key: &'static str,
        holds: Result<bool, String>,
    },
}

/// The `oci-client-auth` checks: the registry answers `/v2/`, and the
/// Docker config holds credentials for `host` when the registry asks for
/// them.
pub fn client_auth(
    host: &str,
    answer: &Result<V2Answer, String>,
    docker: &DockerCredentials,
) -> Vec<Check> {
    let (check, asks) = client_registry_answers(answer);
    vec![check, docker_credentials(host, asks, docker)]
}

/// The registry's `/v2/` answer as a check, and whether it asks for
/// credentials (`None` when that is not known).
fn client_registry_answers(answer: &Result<V2Answer, String>) -> (Check, Option<bool>) {
    const ID: &str = "oci_client_auth.registry_answers";
    let title = "the registry answers /v2/";
    match answer {
        Err(e) => (
            Check::fail(
                ID,
                title,
                e.clone(),
                registry_down_hint("registry.registry_url"),
            ),
            None,
        ),
        Ok(V2Answer { base, status, .. }) if *status == StatusCode::OK => (
            Check::pass(
                ID,
                title,
                format!("{base}/v2/ answered 200: it asks for no credentials"),
            ),
            Some(false),
        ),
        Ok(V2Answer {
            base,
            status,
            challenge,
        }) if *status == StatusCode::UNAUTHORIZED => {
            let challenge = challenge.as_deref().unwrap_or("no challenge");
            (
                Check::pass(
                    ID,
                    title,
                    format!("{base}/v2/ answered 401: it asks for credentials ({challenge})"),
                ),
                Some(true),
            )
        }
        Ok(V2Answer { base, status, .. }) => (
            Check::fail(
                ID,
                title,
                format!("{base}/v2/ answered {status}, not the Docker registry API"),
                "registry.registry_url must name a Docker registry (host and port only)",
            ),
            None,
        ),
    }
}

/// Credentials for `host` in the Docker config. Having none fails only
/// when the registry asks for them (`asks`), warns when that is unknown.
fn docker_credentials(host: &str, asks: Option<bool>, seen: &DockerCredentials) -> Check {
    const ID: &str = "oci_client_auth.docker_credentials";
    let title = format!("the Docker config holds credentials for {host}");
    let login = format!("`docker login {host}`");
    let absent = |detail: String| match asks {
        Some(false) => Check::pass(
            ID,
            title.clone(),
            format!("{detail}; none needed: the registry asks for none"),
        ),
        Some(true) => Check::fail(ID, title.clone(), detail, login.clone()),
        None => Check::warn(
            ID,
            title.clone(),
            format!("{detail}; needed if the registry asks for credentials"),
            login.clone(),
        ),
    };
    match seen {
        DockerCredentials::NoConfig => absent("neither DOCKER_CONFIG nor HOME is set".into()),
        DockerCredentials::Unreadable { path, error } => {
            absent(format!("{}: {error}", path.display()))
        }
        DockerCredentials::NotJson { path } => Check::fail(
            ID,
            title,
            format!("{} is not JSON", path.display()),
            format!("fix or remove {}, then {login}", path.display()),
        ),
        DockerCredentials::Auths { path, key } => {
            Check::pass(ID, title, format!("{}: auths[{key:?}]", path.display()))
        }
        DockerCredentials::Nothing { path } => {
            absent(format!("{} has no entry for {host}", path.display()))
        }
        DockerCredentials::Helper {
            path,
            name,
            key,
            holds,
        } => {
            let helper = format!("docker-credential-{name}");
            match holds {
                Ok(true) => Check::pass(
                    ID,
                    title,
                    format!(
                        "{}: {key} names {helper}, which holds credentials for {host}",
                        path.display()
                    ),
                ),
                Ok(false) => absent(format!(
                    "{}: {key} names {helper}, which holds no credentials for {host}",
                    path.display()
                )),
                Err(e) => Check::fail(
                    ID,
                    title,
                    format!("{}: {key} names {helper}: {e}", path.display()),
                    format!(
                        "install {helper} on PATH, or change `{key}` in {}",
                        path.display()
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::*;
    use crate::config::ConfigPath;
    use std::path::Path;

    fn oci() -> OciTokenConfig {
        OciTokenConfig {
            registry_url: crate::naming::RegistryHost::parse("localhost:5000").unwrap(),
            namespace: crate::naming::RepoNamespace::parse("rise-apps").unwrap(),
            service: "rise-registry".into(),
            issuer: "rise-broker".into(),
            signing_key_file: ConfigPath::new(""),
            certificate_chain_file: ConfigPath::new(""),
            ticket_ttl_seconds: 3600,
            token_ttl_seconds: 300,
        }
    }

    fn inv() -> Location {
        Location::new(Path::new("config"), "development")
    }

    /// Each check's id and outcome, in order.
    fn outcomes(checks: &[Check]) -> Vec<(&'static str, Outcome)> {
        checks.iter().map(|c| (c.id, c.outcome)).collect()
    }

    /// A key and a self-signed certificate for it, as PEM.
    fn pair() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["t".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (key.serialize_pem().into_bytes(), cert.pem().into_bytes())
    }

    const REALM: &str = "http://127.0.0.1:3000/registry/token";

    fn answer(status: StatusCode, challenge: Option<&str>) -> Result<V2Answer, String> {
        Ok(V2Answer {
            base: "https://localhost:5000".into(),
            status,
            challenge: challenge.map(String::from),
        })
    }

    #[test]
    fn challenge_parameters_are_read_quoted_or_not() {
        let c = r#"Bearer realm="http://127.0.0.1:3000/registry/token",service="rise-registry",scope=registry:catalog:*"#;
        assert_eq!(
            challenge_param(c, "realm").as_deref(),
            Some("http://127.0.0.1:3000/registry/token")
        );
        assert_eq!(
            challenge_param(c, "service").as_deref(),
            Some("rise-registry")
        );
        assert_eq!(
            challenge_param(c, "scope").as_deref(),
            Some("registry:catalog:*")
        );
        assert_eq!(challenge_param(c, "issuer"), None);
        assert_eq!(challenge_param(r#"Basic realm="x""#, "realm"), None);
        assert_eq!(
            challenge_param(r#"Bearer realm="a\"b""#, "realm").as_deref(),
            Some("a\"b")
        );
    }

    #[test]
    fn the_key_files_are_named_by_their_config_keys() {
        let mut o = oci();
        assert_eq!(
            key_file_keys(&o),
            (
                "registry.signing_key_file",
                "registry.certificate_chain_file"
            )
        );
        o.signing_key_file.key = "registry.signing_key_file_x".into();
        o.certificate_chain_file.key = "registry.chain_x".into();
        assert_eq!(
            key_file_keys(&o),
            ("registry.signing_key_file_x", "registry.chain_x")
        );
    }

    #[test]
    fn a_matching_pair_in_date_passes_both() {
        let (key, chain) = pair();
        let now = 1_800_000_000;
        let checks = key_and_chain(&Ok(key), &Ok(chain), now, &oci());
        assert_eq!(
            (checks.key.id, checks.key.outcome),
            ("oci_token.key_matches_chain", Outcome::Pass)
        );
        assert_eq!(checks.key.detail, "ES256 key certified by the leaf");
        assert_eq!(
            (checks.date.id, checks.date.outcome),
            ("oci_token.chain_in_date", Outcome::Pass)
        );
    }

    #[test]
    fn a_key_from_another_pair_fails_the_key_check_only() {
        let (key, _) = pair();
        let (_, chain) = pair();
        let checks = key_and_chain(&Ok(key), &Ok(chain), 1_800_000_000, &oci());
        assert_eq!(checks.key.outcome, Outcome::Fail);
        assert!(checks.key.hint.as_deref().unwrap().starts_with(
            "registry.signing_key_file and registry.certificate_chain_file must be a pair"
        ));
        assert_eq!(checks.date.outcome, Outcome::Pass);
    }

    #[test]
    fn unreadable_files_fail_with_every_reason_and_skip_the_dates() {
        let checks = key_and_chain(
            &Err("key.pem: not found".into()),
            &Err("chain.pem: not found".into()),
            0,
            &oci(),
        );
        assert_eq!(checks.key.outcome, Outcome::Fail);
        assert_eq!(
            checks.key.detail,
            "key.pem: not found; chain.pem: not found"
        );
        assert_eq!(
            checks.key.hint.as_deref(),
            Some(
                "registry.signing_key_file and registry.certificate_chain_file must name readable files (`rise-registry oci-token dev-ca --out DIR` writes a development pair)"
            )
        );
        assert_eq!(
            (checks.date.id, checks.date.outcome),
            ("oci_token.chain_in_date", Outcome::Skipped)
        );
        assert_eq!(checks.date.detail, "the chain could not be read");

        let (key, _) = pair();
        let checks = key_and_chain(&Ok(key), &Err("chain.pem: denied".into()), 0, &oci());
        assert_eq!(checks.key.detail, "chain.pem: denied");
    }

    #[test]
    fn a_registry_that_does_not_answer_skips_the_realm() {
        let checks = registry_challenge(
            &Err("https://localhost:5000/v2/: connection refused".into()),
            REALM,
            &oci(),
            &inv(),
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_token.registry_answers", Outcome::Fail),
                ("oci_token.realm", Outcome::Skipped),
            ]
        );
        assert_eq!(
            checks[0].detail,
            "https://localhost:5000/v2/: connection refused"
        );
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("start the registry and check registry.registry_url; ")
        );
        assert_eq!(checks[1].detail, "the registry did not answer");
    }

    #[test]
    fn a_registry_that_asks_for_no_token_fails_with_the_config_block() {
        for (status, challenge, shown) in [
            (
                StatusCode::OK,
                None,
                r#"200 OK without a Bearer challenge ("")"#,
            ),
            (
                StatusCode::UNAUTHORIZED,
                Some(r#"Basic realm="x""#),
                r#"401 Unauthorized without a Bearer challenge ("Basic realm=\"x\"")"#,
            ),
        ] {
            let checks = registry_challenge(&answer(status, challenge), REALM, &oci(), &inv());
            assert_eq!(
                outcomes(&checks),
                [
                    ("oci_token.registry_answers", Outcome::Fail),
                    ("oci_token.realm", Outcome::Skipped),
                ]
            );
            assert_eq!(
                checks[0].detail,
                format!("https://localhost:5000/v2/ answered {shown}")
            );
            assert_eq!(
                checks[0].hint.as_deref(),
                Some(
                    "the registry's config.yml must have auth.token with realm http://127.0.0.1:3000/registry/token and service rise-registry: `rise-registry oci-token registry-config --realm http://127.0.0.1:3000/registry/token` prints the block; restart the registry after changing it"
                )
            );
            assert_eq!(checks[1].detail, "the registry asks for no token");
        }
    }

    #[test]
    fn the_challenge_s_realm_and_service_must_be_rise_registry_s() {
        let right = format!(r#"Bearer realm="{REALM}",service="rise-registry""#);
        let checks = registry_challenge(
            &answer(StatusCode::UNAUTHORIZED, Some(&right)),
            REALM,
            &oci(),
            &inv(),
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_token.registry_answers", Outcome::Pass),
                ("oci_token.realm", Outcome::Pass),
            ]
        );
        assert_eq!(
            checks[0].detail,
            "https://localhost:5000/v2/ answered 401 with a Bearer challenge"
        );
        assert_eq!(
            checks[1].detail,
            format!("realm {REALM}, service rise-registry")
        );

        let wrong = r#"Bearer realm="http://auth.example/token",service="other""#;
        let checks = registry_challenge(
            &answer(StatusCode::UNAUTHORIZED, Some(wrong)),
            REALM,
            &oci(),
            &inv(),
        );
        assert_eq!(checks[0].outcome, Outcome::Pass);
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert_eq!(
            checks[1].detail,
            format!(
                "realm is http://auth.example/token, rise-registry's is {REALM}; service is `other`, registry.service is `rise-registry`"
            )
        );
        assert!(
            checks[1]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("the registry's config.yml must have auth.token")
        );
    }

    #[test]
    fn tokens_wait_for_the_key_the_dates_and_the_registry_in_that_order() {
        assert_eq!(
            token_blocked(false, false, false, false),
            Some("no usable signing key")
        );
        assert_eq!(
            token_blocked(true, false, false, false),
            Some("the certificate chain is not in date")
        );
        assert_eq!(
            token_blocked(true, true, false, false),
            Some("the registry did not answer")
        );
        assert_eq!(
            token_blocked(true, true, true, false),
            Some("no usable signing key")
        );
        assert_eq!(token_blocked(true, true, true, true), None);
    }

    #[test]
    fn a_token_is_accepted_when_the_registry_lists_or_lacks_the_repository() {
        assert!(token_accepted(StatusCode::OK));
        assert!(token_accepted(StatusCode::NOT_FOUND));
        assert!(!token_accepted(StatusCode::UNAUTHORIZED));
        assert!(!token_accepted(StatusCode::FORBIDDEN));
    }

    fn request(repository: &str, answer: Result<StatusCode, &str>) -> TokenRequest {
        TokenRequest {
            repository: repository.into(),
            answer: answer.map_err(String::from),
        }
    }

    fn sent(
        own: Result<StatusCode, &str>,
        elsewhere: Option<Result<StatusCode, &str>>,
    ) -> Vec<Check> {
        let probe = TokenProbe::Sent {
            own: request("rise-apps/my-app", own),
            elsewhere: elsewhere.map(|a| request("rise-apps/my-app-rise-doctor-probe", a)),
        };
        token_checks(&probe, &oci(), &inv())
    }

    #[test]
    fn blocked_tokens_skip_both_checks_and_a_broken_ticket_fails_one() {
        let checks = token_checks(
            &TokenProbe::Blocked("the registry did not answer"),
            &oci(),
            &inv(),
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_token.token_accepted", Outcome::Skipped),
                ("oci_token.token_refused_elsewhere", Outcome::Skipped),
            ]
        );
        assert!(
            checks
                .iter()
                .all(|c| c.detail == "the registry did not answer")
        );
        let checks = token_checks(&TokenProbe::TicketBroken, &oci(), &inv());
        assert_eq!(
            outcomes(&checks),
            [("oci_token.token_accepted", Outcome::Fail)]
        );
        assert_eq!(checks[0].detail, "a ticket just issued does not verify");
    }

    #[test]
    fn a_token_accepted_for_its_repository_and_refused_next_to_it_passes() {
        let checks = sent(
            Ok(StatusCode::NOT_FOUND),
            Some(Ok(StatusCode::UNAUTHORIZED)),
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_token.token_accepted", Outcome::Pass),
                ("oci_token.token_refused_elsewhere", Outcome::Pass),
            ]
        );
        assert_eq!(checks[0].detail, "rise-apps/my-app: 404 Not Found");
        assert_eq!(
            checks[1].detail,
            "rise-apps/my-app-rise-doctor-probe: 401 Unauthorized"
        );
        let checks = sent(Ok(StatusCode::OK), Some(Ok(StatusCode::FORBIDDEN)));
        assert!(checks.iter().all(Check::ok), "{checks:?}");
    }

    #[test]
    fn a_refused_token_names_the_bundle_and_the_issuer() {
        let checks = sent(Ok(StatusCode::UNAUTHORIZED), None);
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_token.token_accepted", Outcome::Fail),
                ("oci_token.token_refused_elsewhere", Outcome::Skipped),
            ]
        );
        assert_eq!(
            checks[0].detail,
            "rise-apps/my-app: the registry answered 401 Unauthorized to a token signed with registry.signing_key_file"
        );
        assert_eq!(
            checks[0].hint.as_deref(),
            Some(
                "the registry's auth.token.rootcertbundle must hold the root of registry.certificate_chain_file (`rise-registry oci-token registry-config --bundle-out FILE` writes it) and its auth.token.issuer must be `rise-broker`; restart the registry after changing them; its log (log.level: info) says which check failed"
            )
        );
        assert_eq!(
            checks[1].detail,
            "the token was not accepted for its own repository"
        );

        let checks = sent(
            Err("https://localhost:5000/v2/rise-apps/my-app/tags/list: reset"),
            None,
        );
        assert_eq!(checks[0].outcome, Outcome::Fail);
        assert_eq!(
            checks[0].detail,
            "https://localhost:5000/v2/rise-apps/my-app/tags/list: reset"
        );
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("start the registry")
        );
        assert_eq!(checks[1].outcome, Outcome::Skipped);
    }

    #[test]
    fn a_token_that_opens_another_repository_fails() {
        let checks = sent(Ok(StatusCode::OK), Some(Ok(StatusCode::OK)));
        assert_eq!(checks[0].outcome, Outcome::Pass);
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert_eq!(
            checks[1].detail,
            "rise-apps/my-app-rise-doctor-probe: the registry answered 200 OK to a token for rise-apps/my-app"
        );
        assert!(
            checks[1]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("the registry does not check the token's access claim")
        );
        let checks = sent(Ok(StatusCode::OK), Some(Err("timed out")));
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert_eq!(checks[1].detail, "timed out");
        assert!(
            checks[1]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("start the registry")
        );
    }

    const HOST: &str = "localhost:5000";

    fn path() -> PathBuf {
        PathBuf::from("/home/me/.docker/config.json")
    }

    #[test]
    fn an_open_registry_needs_no_credentials() {
        let checks = client_auth(
            HOST,
            &answer(StatusCode::OK, None),
            &DockerCredentials::Nothing { path: path() },
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_client_auth.registry_answers", Outcome::Pass),
                ("oci_client_auth.docker_credentials", Outcome::Pass),
            ]
        );
        assert_eq!(
            checks[0].detail,
            "https://localhost:5000/v2/ answered 200: it asks for no credentials"
        );
        assert_eq!(
            checks[1].title,
            "the Docker config holds credentials for localhost:5000"
        );
        assert_eq!(
            checks[1].detail,
            "/home/me/.docker/config.json has no entry for localhost:5000; none needed: the registry asks for none"
        );
    }

    #[test]
    fn a_registry_that_asks_needs_credentials_here() {
        let asks = answer(StatusCode::UNAUTHORIZED, Some(r#"Basic realm="r""#));
        let checks = client_auth(HOST, &asks, &DockerCredentials::Nothing { path: path() });
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_client_auth.registry_answers", Outcome::Pass),
                ("oci_client_auth.docker_credentials", Outcome::Fail),
            ]
        );
        assert_eq!(
            checks[0].detail,
            r#"https://localhost:5000/v2/ answered 401: it asks for credentials (Basic realm="r")"#
        );
        assert_eq!(
            checks[1].detail,
            "/home/me/.docker/config.json has no entry for localhost:5000"
        );
        assert_eq!(
            checks[1].hint.as_deref(),
            Some("`docker login localhost:5000`")
        );

        let checks = client_auth(
            HOST,
            &answer(StatusCode::UNAUTHORIZED, None),
            &DockerCredentials::Auths {
                path: path(),
                key: "https://localhost:5000".into(),
            },
        );
        assert!(
            checks[0].detail.ends_with("(no challenge)"),
            "{}",
            checks[0].detail
        );
        assert_eq!(checks[1].outcome, Outcome::Pass);
        assert_eq!(
            checks[1].detail,
            r#"/home/me/.docker/config.json: auths["https://localhost:5000"]"#
        );
    }

    #[test]
    fn a_registry_that_is_down_or_not_one_leaves_missing_credentials_a_warning() {
        let down = Err("http://localhost:5000/v2/: connection refused".to_string());
        let checks = client_auth(HOST, &down, &DockerCredentials::NoConfig);
        assert_eq!(
            outcomes(&checks),
            [
                ("oci_client_auth.registry_answers", Outcome::Fail),
                ("oci_client_auth.docker_credentials", Outcome::Warn),
            ]
        );
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("start the registry and check registry.registry_url")
        );
        assert_eq!(
            checks[1].detail,
            "neither DOCKER_CONFIG nor HOME is set; needed if the registry asks for credentials"
        );
        assert_eq!(
            checks[1].hint.as_deref(),
            Some("`docker login localhost:5000`")
        );

        let checks = client_auth(
            HOST,
            &answer(StatusCode::NOT_FOUND, None),
            &DockerCredentials::Unreadable {
                path: path(),
                error: "No such file or directory (os error 2)".into(),
            },
        );
        assert_eq!(checks[0].outcome, Outcome::Fail);
        assert_eq!(
            checks[0].detail,
            "https://localhost:5000/v2/ answered 404 Not Found, not the Docker registry API"
        );
        assert_eq!(
            checks[0].hint.as_deref(),
            Some("registry.registry_url must name a Docker registry (host and port only)")
        );
        assert_eq!(checks[1].outcome, Outcome::Warn);
        assert_eq!(
            checks[1].detail,
            "/home/me/.docker/config.json: No such file or directory (os error 2); needed if the registry asks for credentials"
        );
    }

    #[test]
    fn a_config_that_is_not_json_fails_whatever_the_registry_asks() {
        let checks = client_auth(
            HOST,
            &answer(StatusCode::OK, None),
            &DockerCredentials::NotJson { path: path() },
        );
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert_eq!(checks[1].detail, "/home/me/.docker/config.json is not JSON");
        assert_eq!(
            checks[1].hint.as_deref(),
            Some("fix or remove /home/me/.docker/config.json, then `docker login localhost:5000`")
        );
    }

    #[test]
    fn a_credential_helper_is_asked_for_the_host() {
        let helper = |holds| DockerCredentials::Helper {
            path: path(),
            name: "pass".into(),
            key: "credHelpers",
            holds,
        };
        let asks = answer(StatusCode::UNAUTHORIZED, None);

        let checks = client_auth(HOST, &asks, &helper(Ok(true)));
        assert_eq!(checks[1].outcome, Outcome::Pass);
        assert_eq!(
            checks[1].detail,
            "/home/me/.docker/config.json: credHelpers names docker-credential-pass, which holds credentials for localhost:5000"
        );

        let checks = client_auth(HOST, &asks, &helper(Ok(false)));
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert_eq!(
            checks[1].detail,
            "/home/me/.docker/config.json: credHelpers names docker-credential-pass, which holds no credentials for localhost:5000"
        );

        let checks = client_auth(HOST, &asks, &helper(Err("not found on PATH".into())));
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert_eq!(
            checks[1].detail,
            "/home/me/.docker/config.json: credHelpers names docker-credential-pass: not found on PATH"
        );
        assert_eq!(
            checks[1].hint.as_deref(),
            Some(
                "install docker-credential-pass on PATH, or change `credHelpers` in /home/me/.docker/config.json"
            )
        );
    }
}
