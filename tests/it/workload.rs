//! Workload identities end to end: CI jobs calling serve with the OIDC
//! tokens of their CI system, verified through each issuer's discovery
//! document and JWKS ([`OidcIssuer`] on loopback, one for GitHub Actions'
//! claims and one for GitLab CI's), and matched against the claim rules of
//! a project's `access` (push and pull) and `pull_access` (pull only).
//!
//! serve runs in the test process ([`TestServer`]); the issuers run on
//! threads of their own, so their counters show what serve fetched. The
//! pull-only tickets of `oci-token` are checked against Debian's
//! docker-registry with skopeo, reusing the set-up of `serve_oci_token`.

use crate::serve_oci_token::{basic, registry_block, setup_with, token_claims};
use crate::support;

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use support::http::{Reply, get, send};
use support::in_process::TestServer;
use support::jwt::{TestKey, claims, hs256};
use support::oidc::{DISCOVERY_PATH, GithubWorkflow, GitlabJob, JWKS_PATH, OidcIssuer};

const SECRET: &str = "workload-test-secret-workload-test-0123";
const AUD: &str = "rise";

/// The `auth:` block: people through the single-issuer keys (the issuer
/// named `default`), CI jobs through `github` and `gitlab`, found by
/// discovery (no `jwks_url`).
fn auth(github: &OidcIssuer, gitlab: &OidcIssuer) -> String {
    format!(
        r#"auth:
  issuer: test-issuer
  audience: {AUD}
  hs256_secret: {SECRET}
  issuers:
    - {{name: github, issuer: "{github}", audience: {AUD}}}
    - {{name: gitlab, issuer: "{gitlab}", audience: [{AUD}, "https://vault.example.com"]}}
"#,
        github = github.url,
        gitlab = gitlab.url,
    )
}

/// `my-app`: pushed by acme/my-app's main branch and team-a, pulled too by
/// `reader` and by any pull request of an acme repository. `deploy`:
/// pushed by GitLab jobs of acme/deploy on protected refs. `named`: people
/// only, one of them named exactly like a GitHub job's `sub`.
const PROJECTS: &str = r#"projects:
  - name: my-app
    access:
      - group:team-a
      - issuer: github
        claims: {repository: acme/my-app, ref: refs/heads/main, event_name: push}
    pull_access:
      - user:reader
      - issuer: github
        claims: {repository_owner: acme, event_name: pull_request}
        claims_like: {ref: "refs/pull/*/merge"}
  - name: deploy
    access:
      - issuer: gitlab
        claims: {project_path: acme/deploy, ref_protected: "true"}
  - name: named
    access: ["user:repo:acme/my-app:ref:refs/heads/main", "group:builders"]
"#;

fn config(github: &OidcIssuer, gitlab: &OidcIssuer) -> String {
    format!(
        "registry: {{type: oci-client-auth, registry_url: \"localhost:5000\", namespace: rise-apps}}\n{PROJECTS}{}",
        auth(github, gitlab)
    )
}

/// A token of the `default` issuer (HS256) for a person.
fn person(sub: &str, groups: &[&str]) -> String {
    let mut c = claims(sub, None, groups);
    c["iss"] = json!("test-issuer");
    c["aud"] = json!(AUD);
    hs256(SECRET, &c)
}

async fn credentials(serve: &TestServer, query: &str, token: &str) -> Reply {
    get(
        &serve.url(&format!("/registry/credentials?{query}")),
        Some(token),
    )
    .await
}

/// The 404 a person without access to `my-app` gets today: what every
/// refused workload must get too, so a CI job cannot tell an unknown
/// project from one it may not use.
async fn not_permitted(serve: &TestServer) -> String {
    let reply = credentials(serve, "project=my-app", &person("stranger", &[])).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(serve.last_audit()["outcome"], "not_permitted");
    reply.body
}

/// `reply` is the not-permitted 404, and the audit line says so.
fn assert_not_permitted(serve: &TestServer, reply: &Reply, body: &str, what: &str) {
    assert_eq!(reply.status, 404, "{what}: {}", reply.body);
    assert_eq!(reply.body, body, "{what}: the same body as any refusal");
    let line = serve.last_audit();
    assert_eq!(line["outcome"], "not_permitted", "{what}: {line}");
}

fn assert_unauthenticated(serve: &TestServer, reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "invalid_token", "{what}");
    assert!(
        reply.header("www-authenticate").is_some(),
        "{what}: a 401 names the scheme"
    );
    assert_eq!(serve.last_audit()["outcome"], "unauthenticated", "{what}");
}

/// The test issuer itself, checked with an independent verifier: what it
/// publishes is what OIDC clients expect, its tokens verify against it,
/// and rotation and counting work. Needs no serve.
#[tokio::test]
async fn the_local_issuer_publishes_what_an_oidc_client_needs_and_its_tokens_verify() {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};

    let issuer = OidcIssuer::start("ci");
    assert!(
        issuer.url.starts_with("http://127.0.0.1:"),
        "{}",
        issuer.url
    );
    let discovery = get(&format!("{}{DISCOVERY_PATH}", issuer.url), None).await;
    assert_eq!(discovery.status, 200);
    let doc = discovery.json();
    assert_eq!(doc["issuer"], issuer.url);
    assert_eq!(doc["jwks_uri"], issuer.jwks_url());
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    let keys = |body: String| -> JwkSet { serde_json::from_str(&body).unwrap() };
    let set = keys(get(&issuer.jwks_url(), None).await.body);
    assert_eq!(set.keys.len(), 2);

    let verify = |set: &JwkSet, token: &str| {
        let header = decode_header(token).unwrap();
        let jwk = set
            .find(header.kid.as_deref().unwrap())
            .ok_or("unknown kid")?;
        let mut rules = Validation::new(header.alg);
        rules.set_issuer(&[&issuer.url]);
        rules.set_audience(&[AUD]);
        decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &rules)
            .map(|t| t.claims)
            .map_err(|_| "refused")
    };
    let github = GithubWorkflow::push("acme/my-app", "main").claims(&issuer.url, AUD);
    let gitlab = GitlabJob::branch("acme/deploy", "main", true).claims(&issuer.url, AUD);
    for c in [&github, &gitlab] {
        assert_eq!(verify(&set, &issuer.rs256(c)).as_ref(), Ok(c));
        assert_eq!(verify(&set, &issuer.es256(c)).as_ref(), Ok(c));
    }
    let elsewhere = GithubWorkflow::push("acme/my-app", "main").claims("https://elsewhere", AUD);
    assert_eq!(verify(&set, &issuer.rs256(&elsewhere)), Err("refused"));

    // Rotation: the new key is published, the old one no longer.
    let old = issuer.current("RS256");
    let new = issuer.rotate(TestKey::rs256("ci-rs256-2"));
    assert_eq!(issuer.current("RS256"), new);
    let rotated = keys(get(&issuer.jwks_url(), None).await.body);
    assert!(rotated.find(&new).is_some() && rotated.find(&old).is_none());
    assert!(rotated.find(&issuer.current("ES256")).is_some());
    assert_eq!(
        verify(&rotated, &issuer.rs256(&github)).as_ref(),
        Ok(&github)
    );
    assert_eq!(
        verify(&rotated, &issuer.sign(&old, &github)),
        Err("unknown kid")
    );

    assert_eq!(
        get(&format!("{}/elsewhere", issuer.url), None).await.status,
        404
    );
    assert_eq!(
        (
            issuer.discovery_fetches(),
            issuer.jwks_fetches(),
            issuer.requests()
        ),
        (1, 2, 4)
    );
    assert_eq!(issuer.jwks_url(), format!("{}{JWKS_PATH}", issuer.url));
}

/// The claim sets have the documented shapes and types.
#[test]
fn the_claim_sets_are_shaped_as_github_and_gitlab_document_them() {
    let iss = "https://token.actions.githubusercontent.com";
    let push = GithubWorkflow::push("octo-org/octo-repo", "demo-branch");
    assert_eq!(
        push.sub(),
        "repo:octo-org/octo-repo:ref:refs/heads/demo-branch"
    );
    let env = push.clone().in_environment("Production");
    assert_eq!(env.sub(), "repo:octo-org/octo-repo:environment:Production");
    let pr = GithubWorkflow::pull_request("octo-org/octo-repo", 1, "feature", "main");
    assert_eq!(pr.sub(), "repo:octo-org/octo-repo:pull_request");
    let c = pr.claims(iss, AUD);
    assert_eq!(c["ref"], "refs/pull/1/merge");
    assert_eq!(
        (c["head_ref"].as_str(), c["base_ref"].as_str()),
        (Some("feature"), Some("main"))
    );
    assert_eq!(c["repository_owner"], "octo-org");
    assert!(c.get("environment").is_none());
    assert_eq!(env.claims(iss, AUD)["environment"], "Production");
    let times = ["exp", "iat", "nbf"];
    for (key, value) in c.as_object().unwrap() {
        match key.as_str() {
            k if times.contains(&k) => assert!(value.is_i64(), "{k}: {value}"),
            k => assert!(value.is_string(), "GitHub sends {k} as a string: {value}"),
        }
    }
    assert_eq!(c["ref_protected"], "false");
    assert_ne!(c["jti"], push.claims(iss, AUD)["jti"]);

    let job = GitlabJob::branch("my-group/my-project", "feature-branch-1", false).in_environment(
        "test-environment2",
        false,
        "testing",
    );
    assert_eq!(
        job.sub(),
        "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1"
    );
    let c = job.claims("https://gitlab.example.com", AUD);
    assert_eq!(c["namespace_path"], "my-group");
    assert_eq!(c["ref_path"], "refs/heads/feature-branch-1");
    assert_eq!(
        c["ci_config_ref_uri"],
        "gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/feature-branch-1"
    );
    for (key, value) in c.as_object().unwrap() {
        match key.as_str() {
            k if times.contains(&k) || k == "runner_id" => assert!(value.is_i64(), "{k}: {value}"),
            k => assert!(value.is_string(), "GitLab sends {k} as a string: {value}"),
        }
    }
    assert_eq!(c["ref_protected"], "false");
    assert_eq!(c["environment_protected"], "false");
}

#[tokio::test]
async fn a_github_workflow_gets_credentials_for_its_repository_branch_and_event_only() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let serve = TestServer::start(&config(&github, &gitlab)).await;
    let refused = not_permitted(&serve).await;

    let main = GithubWorkflow::push("acme/my-app", "main");
    let reply = credentials(
        &serve,
        "project=my-app",
        &github.rs256(&main.claims(&github.url, AUD)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"credentials": {"registry_url": "localhost:5000", "username": "", "password": ""},
               "repository": "my-app", "image": "localhost:5000/rise-apps/my-app"})
    );
    let line = serve.last_audit();
    assert_eq!(line["outcome"], "issued");
    assert_eq!(line["project"], "my-app");
    assert_eq!(line["access"], "push");
    // The audit names the issuer with the subject, and the rule that admitted.
    assert_eq!(
        line["caller"],
        json!(["workload:github:repo:acme/my-app:ref:refs/heads/main"])
    );
    let grant = line["grant"].as_str().unwrap();
    assert!(grant.starts_with("access via workload:github{"), "{grant}");
    // The rule reads claims, not the subject: the same job in an
    // environment (another `sub`) is the same pipeline, signed with ES256.
    let deploying = main.clone().in_environment("production");
    let reply = credentials(
        &serve,
        "project=my-app",
        &github.es256(&deploying.claims(&github.url, AUD)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let others = [
        (
            "another repository",
            GithubWorkflow::push("acme/other", "main"),
        ),
        (
            "a repository named alike",
            GithubWorkflow::push("acme/my-app2", "main"),
        ),
        (
            "another branch",
            GithubWorkflow::push("acme/my-app", "feature"),
        ),
        (
            "a pull request into main",
            GithubWorkflow::pull_request("acme/my-app", 1, "feature", "main"),
        ),
    ];
    for (what, job) in others {
        let token = github.rs256(&job.claims(&github.url, AUD));
        let reply = credentials(&serve, "project=my-app", &token).await;
        assert_not_permitted(&serve, &reply, &refused, what);
    }
    // The right pipeline still reaches no other project.
    let token = github.rs256(&main.claims(&github.url, AUD));
    let reply = credentials(&serve, "project=deploy", &token).await;
    assert_not_permitted(&serve, &reply, &refused, "main of acme/my-app on deploy");
}

#[tokio::test]
async fn gitlab_jobs_get_credentials_from_protected_refs_only() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let serve = TestServer::start(&config(&github, &gitlab)).await;
    let refused = not_permitted(&serve).await;

    let protected = GitlabJob::branch("acme/deploy", "main", true);
    let reply = credentials(
        &serve,
        "project=deploy",
        &gitlab.rs256(&protected.claims(&gitlab.url, AUD)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["image"], "localhost:5000/rise-apps/deploy");
    assert_eq!(serve.last_audit()["outcome"], "issued");
    // The audience may be any of the configured list.
    let vault = protected.claims(&gitlab.url, "https://vault.example.com");
    let reply = credentials(&serve, "project=deploy", &gitlab.es256(&vault)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let unprotected = GitlabJob::branch("acme/deploy", "feature", false);
    let token = gitlab.rs256(&unprotected.claims(&gitlab.url, AUD));
    let reply = credentials(&serve, "project=deploy", &token).await;
    assert_not_permitted(&serve, &reply, &refused, "an unprotected ref");
    let elsewhere = GitlabJob::branch("acme/deploy-tools", "main", true);
    let token = gitlab.rs256(&elsewhere.claims(&gitlab.url, AUD));
    let reply = credentials(&serve, "project=deploy", &token).await;
    assert_not_permitted(&serve, &reply, &refused, "another project");
}

/// A rule trusts one issuer: tokens of another issuer never match it, a
/// key of one issuer never verifies another's tokens, and a token of an
/// issuer serve does not know is refused without a single request to
/// anyone.
#[tokio::test]
async fn a_rule_matches_only_verified_tokens_of_the_issuer_it_names() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let serve = TestServer::start(&config(&github, &gitlab)).await;
    let refused = not_permitted(&serve).await;
    let main = GithubWorkflow::push("acme/my-app", "main");
    // Both issuers' keys are known before counting.
    let token = github.rs256(&main.claims(&github.url, AUD));
    let reply = credentials(&serve, "project=my-app", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job = GitlabJob::branch("acme/deploy", "main", true);
    let token = gitlab.rs256(&job.claims(&gitlab.url, AUD));
    let reply = credentials(&serve, "project=deploy", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Past the minimum refresh interval (30 s by default, on paused time),
    // so that any attempt to look up keys for the token below would fetch.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    tokio::time::resume();
    let fetched = |i: &OidcIssuer| (i.discovery_fetches(), i.jwks_fetches());
    let before = (fetched(&github), fetched(&gitlab));

    // GitHub's claims under another, unconfigured issuer: 401, and nobody
    // was asked for keys, least of all the issuer the token names.
    let third = OidcIssuer::start("third");
    let token = third.rs256(&main.claims(&third.url, AUD));
    let reply = credentials(&serve, "project=my-app", &token).await;
    assert_unauthenticated(&serve, &reply, "an unknown issuer");
    assert_eq!(
        third.requests(),
        0,
        "serve fetched from an issuer it does not trust"
    );
    assert_eq!((fetched(&github), fetched(&gitlab)), before);

    // GitHub's claims, issued and signed by the gitlab issuer: verified,
    // but the github rule does not match it.
    let token = gitlab.rs256(&main.claims(&gitlab.url, AUD));
    let reply = credentials(&serve, "project=my-app", &token).await;
    assert_not_permitted(&serve, &reply, &refused, "github's claims from gitlab");
    assert_eq!(
        serve.last_audit()["caller"],
        json!([format!("workload:gitlab:{}", main.sub())])
    );

    // A token naming github but signed with gitlab's key.
    let forged = gitlab.sign(&gitlab.current("RS256"), &main.claims(&github.url, AUD));
    let reply = credentials(&serve, "project=my-app", &forged).await;
    assert_unauthenticated(&serve, &reply, "github's iss, gitlab's key");

    // A token for another audience.
    let token = github.rs256(&main.claims(&github.url, "sts.amazonaws.com"));
    let reply = credentials(&serve, "project=my-app", &token).await;
    assert_unauthenticated(&serve, &reply, "another audience");
    assert_eq!(third.requests(), 0);
}

/// `principals` defaults to false: a workload token yields no `user:` or
/// `group:` identity, even when its `sub` or a `groups` claim spells one
/// that a project names.
#[tokio::test]
async fn user_and_group_principals_never_match_a_workload_token() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let serve = TestServer::start(&config(&github, &gitlab)).await;
    let refused = not_permitted(&serve).await;
    let main = GithubWorkflow::push("acme/my-app", "main");
    assert_eq!(main.sub(), "repo:acme/my-app:ref:refs/heads/main");

    // The same principals do match a person's token: they are valid.
    let reply = credentials(&serve, "project=named", &person(&main.sub(), &[])).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = credentials(&serve, "project=named", &person("someone", &["builders"])).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let mut c = main.claims(&github.url, AUD);
    c["groups"] = json!(["builders", "team-a"]);
    c["email"] = json!("ci@example.com");
    c["email_verified"] = json!(true);
    let token = github.rs256(&c);
    let reply = credentials(&serve, "project=named", &token).await;
    assert_not_permitted(&serve, &reply, &refused, "user:<sub> and group:builders");
    // Nor does its `groups` claim make it team-a on my-app: it gets my-app
    // only through the rule, which this job on a branch does not match.
    let mut c = GithubWorkflow::push("acme/my-app", "feature").claims(&github.url, AUD);
    c["groups"] = json!(["team-a"]);
    let reply = credentials(&serve, "project=my-app", &github.rs256(&c)).await;
    assert_not_permitted(&serve, &reply, &refused, "group:team-a from a groups claim");
}

/// Rotation at an issuer found by discovery works as with `jwks_url`
/// (see `serve::jwks_keys_verify_es256_and_rs256_and_rotation_is_picked_up`):
/// a token naming an unknown key id, once the minimum refresh interval has
/// passed, makes serve fetch that issuer's JWKS again and accept it; the
/// retired key is refused from then on. Each issuer's keys are its own.
#[tokio::test]
async fn keys_rotated_at_an_issuer_are_picked_up_rs256_and_es256() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let serve = TestServer::start(&config(&github, &gitlab)).await;
    let main = || GithubWorkflow::push("acme/my-app", "main").claims(&github.url, AUD);
    let deploy = || GitlabJob::branch("acme/deploy", "main", true).claims(&gitlab.url, AUD);
    let my_app = |token: String| {
        let url = serve.url("/registry/credentials?project=my-app");
        async move { get(&url, Some(&token)).await }
    };
    let deploy_app = |token: String| {
        let url = serve.url("/registry/credentials?project=deploy");
        async move { get(&url, Some(&token)).await }
    };
    assert_eq!(my_app(github.rs256(&main())).await.status, 200);
    assert_eq!(deploy_app(gitlab.es256(&deploy())).await.status, 200);
    assert!(
        github.discovery_fetches() >= 1,
        "github's keys were found by discovery"
    );
    assert!(
        gitlab.discovery_fetches() >= 1,
        "gitlab's keys were found by discovery"
    );

    // The interval passes on paused time (past the 30 s default); the
    // requests run on real time again, as the issuers are other threads.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    tokio::time::resume();
    let (github_fetched, gitlab_fetched) = (github.jwks_fetches(), gitlab.jwks_fetches());
    let retired_rs = github.current("RS256");
    let retired_es = gitlab.current("ES256");
    github.rotate(TestKey::rs256("github-rs256-2"));
    gitlab.rotate(TestKey::es256("gitlab-es256-2"));

    let reply = my_app(github.rs256(&main())).await;
    assert_eq!(reply.status, 200, "new RS256 key: {}", reply.body);
    assert_eq!(github.jwks_fetches(), github_fetched + 1);
    assert_eq!(
        gitlab.jwks_fetches(),
        gitlab_fetched,
        "one issuer's rotation is its own"
    );
    let reply = deploy_app(gitlab.es256(&deploy())).await;
    assert_eq!(reply.status, 200, "new ES256 key: {}", reply.body);
    assert_eq!(gitlab.jwks_fetches(), gitlab_fetched + 1);

    // New tokens signed with the retired keys are refused; github's ES256
    // key, never rotated, still works.
    let reply = my_app(github.sign(&retired_rs, &main())).await;
    assert_unauthenticated(&serve, &reply, "github's retired RS256 key");
    let reply = deploy_app(gitlab.sign(&retired_es, &deploy())).await;
    assert_unauthenticated(&serve, &reply, "gitlab's retired ES256 key");
    assert_eq!(my_app(github.es256(&main())).await.status, 200);
}

/// `access=pull` against `pull_access`: pull-only principals and rules get
/// credentials to pull and nothing to push; `access` grants both.
#[tokio::test]
async fn pull_access_grants_pull_only_and_access_grants_both() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let serve = TestServer::start(&config(&github, &gitlab)).await;
    let refused = not_permitted(&serve).await;
    let reader = person("reader", &[]);

    let reply = credentials(&serve, "project=my-app&access=pull", &reader).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["image"], "localhost:5000/rise-apps/my-app");
    let line = serve.last_audit();
    assert_eq!(
        (line["outcome"].as_str(), line["access"].as_str()),
        (Some("issued"), Some("pull"))
    );
    assert!(
        serve
            .audit_text()
            .lines()
            .last()
            .unwrap()
            .contains(r#""access":"pull""#)
    );
    for query in ["project=my-app", "project=my-app&access=push"] {
        let reply = credentials(&serve, query, &reader).await;
        assert_not_permitted(&serve, &reply, &refused, query);
        assert_eq!(serve.last_audit()["access"], "push", "{query}");
    }
    for query in [
        "project=my-app&access=bogus",
        "project=my-app&access=PULL",
        "project=my-app&access=",
    ] {
        let reply = credentials(&serve, query, &reader).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(
            reply.json()["error"]["code"].is_string(),
            "{query}: {}",
            reply.body
        );
    }

    // A pull request's workflow, through the pull_access rule.
    let pr = GithubWorkflow::pull_request("acme/tools", 7, "bump", "main");
    let token = github.rs256(&pr.claims(&github.url, AUD));
    let reply = credentials(&serve, "project=my-app&access=pull", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let line = serve.last_audit();
    assert_eq!(line["access"], "pull");
    let grant = line["grant"].as_str().unwrap();
    assert!(
        grant.starts_with("pull_access via workload:github{"),
        "{grant}"
    );
    let reply = credentials(&serve, "project=my-app", &token).await;
    assert_not_permitted(&serve, &reply, &refused, "a pull request pushing");
    // The rule's glob is anchored at both ends.
    for git_ref in ["refs/pull/7/merge-queue", "x/refs/pull/7/merge"] {
        let odd = GithubWorkflow {
            git_ref: git_ref.into(),
            ..pr.clone()
        };
        let token = github.rs256(&odd.claims(&github.url, AUD));
        let reply = credentials(&serve, "project=my-app&access=pull", &token).await;
        assert_not_permitted(&serve, &reply, &refused, git_ref);
    }

    // Push access includes pull, for people and workloads.
    let reply = credentials(
        &serve,
        "project=my-app&access=pull",
        &person("p", &["team-a"]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let main = GithubWorkflow::push("acme/my-app", "main");
    let token = github.rs256(&main.claims(&github.url, AUD));
    let reply = credentials(&serve, "project=my-app&access=pull", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(serve.last_audit()["access"], "pull");

    // The request counter tells the accesses apart (the first request of
    // each kind is issued, repeats may be served from the cache).
    let metrics = get(&serve.url("/metrics"), None).await.body;
    let count = |access: &str, outcomes: &[&str]| {
        metrics
            .lines()
            .filter(|l| l.starts_with("rise_registry_credential_requests_total{"))
            .filter(|l| l.contains(&format!("access=\"{access}\"")))
            .filter(|l| {
                outcomes
                    .iter()
                    .any(|o| l.contains(&format!("outcome=\"{o}\"")))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum::<u64>()
    };
    assert_eq!(count("pull", &["issued", "cache_hit"]), 4, "{metrics}");
    assert_eq!(count("pull", &["not_found"]), 2, "{metrics}");
    assert_eq!(count("push", &["not_found"]), 4, "{metrics}");
}

/// `oci-token` with a pull ticket: the registry lets it read an image a
/// push ticket wrote, and refuses it any write. Both a pull-only person
/// and a pull-only workload.
#[tokio::test(flavor = "multi_thread")]
async fn a_pull_ticket_reads_the_registry_and_writes_nothing() {
    let (github, gitlab) = (OidcIssuer::start("github"), OidcIssuer::start("gitlab"));
    let access = format!("{PROJECTS}{}", auth(&github, &gitlab));
    let s = setup_with(&access).await;
    let (pusher, _) = s.login(&person("p", &["team-a"]), "project=my-app").await;
    let pushed = s
        .push(&pusher, "rise-apps/my-app", b"my-app v1\n")
        .unwrap_or_else(|e| panic!("push: {e}\nregistry log:\n{}", s.registry.logs()));

    let pr = GithubWorkflow::pull_request("acme/tools", 7, "bump", "main");
    let workload = github.rs256(&pr.claims(&github.url, AUD));
    for (who, token) in [
        ("reader", person("reader", &[])),
        ("a pull request", workload),
    ] {
        let (ticket, body) = s.login(&token, "project=my-app&access=pull").await;
        assert_eq!(body["repository"], "my-app", "{who}");
        assert_eq!(s.serve.last_audit()["access"], "pull", "{who}");
        assert_eq!(
            s.pull_digest(&ticket, "rise-apps/my-app"),
            Ok(pushed.clone()),
            "{who} pulls\nregistry log:\n{}",
            s.registry.logs()
        );
        let refused = s.push(&ticket, "rise-apps/my-app", b"overwritten\n");
        assert!(refused.is_err(), "{who} pushed with a pull ticket");

        // The realm grants the ticket pull alone, whatever it asks for.
        let reply = send(
            Method::GET,
            &s.realm("service=rise-registry&scope=repository:rise-apps/my-app:pull,push"),
            &[("authorization", &basic(&ticket))],
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "{who}: {}", reply.body);
        assert_eq!(
            token_claims(reply.json()["token"].as_str().unwrap())["access"],
            json!([{"type": "repository", "name": "rise-apps/my-app", "actions": ["pull"]}]),
            "{who}"
        );
    }
    assert_eq!(
        s.pull_digest(&pusher, "rise-apps/my-app"),
        Ok(pushed),
        "the image is unchanged"
    );
}

/// The realm judges a ticket's holder by its issuer as the running config
/// has it: replicas sharing the broker key, one where the issuer's tokens
/// no longer yield principals, one where the issuer is gone, refuse the
/// ticket the first replica issued, while the first still honours it.
#[tokio::test]
async fn the_realm_takes_the_ticket_issuers_standing_from_the_running_config() {
    let idp = OidcIssuer::start("idp");
    let access = |principals: bool| {
        format!(
            "projects:\n  - {{name: my-app, access: [\"user:alice\"]}}\nauth:\n  issuers:\n    - {{name: idp, issuer: \"{}\", audience: {AUD}, principals: {principals}}}\n",
            idp.url
        )
    };
    let s = setup_with(&access(true)).await;
    let now = support::jwt::now();
    let token = idp
        .rs256(&json!({"iss": idp.url, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300}));
    let (login, _) = s.login(&token, "project=my-app").await;
    let exchange = |server: &TestServer| {
        let url = server
            .url("/registry/token?service=rise-registry&scope=repository:rise-apps/my-app:pull");
        let auth = basic(&login);
        async move { send(Method::GET, &url, &[("authorization", &auth)], "").await }
    };
    assert_eq!(exchange(&s.serve).await.status, 200);

    let replica = |tail: String| {
        let config = format!("{}{tail}", registry_block(s.registry.addr, s.pki.path()));
        async move { TestServer::start(&config).await }
    };
    let not_persons = replica(access(false)).await;
    let gone = replica(format!(
        "projects:\n  - {{name: my-app, access: [\"user:alice\"]}}\nauth: {{hs256_secret: {SECRET}}}\n"
    ))
    .await;
    for server in [&not_persons, &gone] {
        let reply = exchange(server).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(
            reply.body.contains("no longer has access"),
            "{}",
            reply.body
        );
        let line = server.audit_matching(|l| l["audit"] == "token");
        assert_eq!(line[0]["issuer"], "idp");
        assert_eq!(line[0]["reason"], "not_permitted");
    }
    assert_eq!(
        exchange(&s.serve).await.status,
        200,
        "the first replica is unchanged"
    );
}
