//! serve with the `ecr` provider against the AWS emulator: AssumeRole with
//! the session policy, GetAuthorizationToken with the scoped credentials,
//! caching, single flight, and behaviour when AWS fails.
//!
//! serve runs in the test process ([`TestServer`]), so waiting out a cache
//! floor or a back-off is `tokio::time::advance` on paused time, not a
//! sleep. Time is resumed before each request: the emulator is another
//! process, and paused time would let the SDK's timeouts fire at once.

use crate::support;

use std::time::Duration;

use support::Emulator;
use support::http::get;
use support::in_process::TestServer;
use support::jwt::{claims, hs256};

const SECRET: &str = "ecr-test-secret-ecr-test-secret-0123456";

fn config(emulator: &Emulator, extra_registry: &str, extra: &str) -> String {
    format!(
        r#"{}{extra_registry}
projects:
  - {{name: my-app, access: ["group:team-a"]}}
auth: {{hs256_secret: {SECRET}}}
{extra}"#,
        emulator.registry_block()
    )
}

/// Lets `duration` pass on serve's clock (the test's tokio clock) at once.
async fn pass(duration: Duration) {
    tokio::time::pause();
    tokio::time::advance(duration).await;
    tokio::time::resume();
}

fn token() -> String {
    hs256(SECRET, &claims("u-1", None, &["team-a"]))
}

fn url(serve: &TestServer) -> String {
    serve.url("/registry/credentials?project=my-app")
}

async fn metric(serve: &TestServer, line_prefix: &str) -> u64 {
    let metrics = get(&serve.url("/metrics"), None).await.body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn ecr_credentials_are_scoped_tokens_with_a_true_countdown() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let serve = TestServer::start(&config(&emulator, "", "")).await;
    let ready = get(&serve.url("/readyz"), None).await;
    assert_eq!(
        ready.status, 200,
        "AWS answers GetCallerIdentity: {}",
        ready.body
    );

    let reply = get(&url(&serve), Some(&token())).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, serve.logs());
    let body = reply.json();
    let creds = &body["credentials"];
    let host = emulator.addr.to_string();
    assert_eq!(
        creds["registry_url"],
        host.as_str(),
        "the proxy endpoint without scheme"
    );
    assert_eq!(creds["username"], "AWS");
    assert!(!creds["password"].as_str().unwrap().is_empty());
    assert_eq!(body["repository"], "my-app");
    assert_eq!(body["image"], format!("{host}/rise/my-app"));
    let expires_in = creds["expires_in"].as_u64().unwrap();
    assert!(
        (3500..=3600).contains(&expires_in),
        "session of 3600 s: {expires_in}"
    );
    let expires_at = creds["expires_at"].as_str().unwrap();
    let at = aws_sdk_sts::primitives::DateTime::from_str(
        expires_at,
        aws_sdk_sts::primitives::DateTimeFormat::DateTime,
    )
    .expect("RFC 3339");
    let now = support::jwt::now();
    assert!(
        (at.secs() - now - expires_in as i64).abs() <= 2,
        "expires_at and expires_in agree"
    );

    // Second request: from the cache, counting down, no new AssumeRole.
    pass(Duration::from_millis(1100)).await;
    let again = get(&url(&serve), Some(&token())).await.json();
    assert_eq!(again["credentials"]["password"], creds["password"]);
    assert!(again["credentials"]["expires_in"].as_u64().unwrap() < expires_in);
    assert_eq!(
        metric(&serve, "rise_registry_provider_calls_total{result=\"ok\"}").await,
        1
    );
    let audit = serve.audit(2);
    assert_eq!(
        (
            audit[0]["cache_hit"].as_bool(),
            audit[1]["cache_hit"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(audit[1]["provider"], "ecr");
    let password = creds["password"].as_str().unwrap();
    assert!(
        !format!("{audit:?}{}", serve.logs()).contains(password),
        "no secret in audit or logs"
    );
}

#[tokio::test]
async fn concurrent_cold_requests_cause_one_assume_role() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let serve = TestServer::start(&config(&emulator, "", "")).await;
    let url = url(&serve);
    // Fifty different callers, so the per-caller rate limit is not what
    // is being tested.
    let replies = futures_join_all((0..50).map(|i| {
        let url = url.clone();
        let token = hs256(SECRET, &claims(&format!("u-{i}"), None, &["team-a"]));
        tokio::spawn(async move { get(&url, Some(&token)).await })
    }))
    .await;
    let passwords: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["credentials"]["password"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(passwords.len(), 1, "everyone got the same credentials");
    assert_eq!(
        metric(&serve, "rise_registry_provider_calls_total{result=\"ok\"}").await,
        1
    );
}

async fn futures_join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn aws_failure_is_a_503_with_retry_after() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    // A push role that does not exist: AssumeRole fails.
    let cfg = config(&emulator, "", "").replace("rise-backend-ecr-push", "no-such-role");
    let serve = TestServer::start(&cfg).await;
    let reply = get(&url(&serve), Some(&token())).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "registry_unavailable");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry));
    let audit = serve.audit(1);
    assert_eq!(audit[0]["outcome"], "unavailable");
    let reason = audit[0]["reason"].as_str().unwrap();
    // AWS's code and message: what was refused, to whom, on what.
    assert!(
        reason.contains("AssumeRole") && reason.contains("AccessDenied: User: arn:aws:iam::"),
        "{audit:?}"
    );
    // AWS's own words, not a Debug dump of the SDK error.
    assert!(
        !reason.contains("Some(") && !reason.contains(" { "),
        "{reason}"
    );
    // Within the back-off AWS is not asked again.
    assert_eq!(get(&url(&serve), Some(&token())).await.status, 503);
    assert_eq!(
        metric(
            &serve,
            "rise_registry_provider_calls_total{result=\"error\"}"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_outage_serves_cached_credentials_while_they_are_valid() {
    let mut emulator = Emulator::start();
    support::provision(&emulator).await;
    // 900 s sessions and a floor of 899 s: the cached credential wants a
    // refresh two seconds after issue, while it is still valid for ~15 min.
    let cfg = config(
        &emulator,
        "  session_duration_seconds: 900",
        "server: {credential_cache: {min_remaining_seconds: 899}}",
    );
    let serve = TestServer::start(&cfg).await;
    let first = get(&url(&serve), Some(&token())).await;
    assert_eq!(first.status, 200, "{}", first.body);
    emulator.stop();
    pass(Duration::from_secs(2)).await;
    let during = get(&url(&serve), Some(&token())).await;
    assert_eq!(during.status, 200, "{}", during.body);
    assert_eq!(
        during.json()["credentials"]["password"],
        first.json()["credentials"]["password"]
    );
    let last = serve.audit(2).pop().unwrap();
    assert_eq!(
        (last["stale"].as_bool(), last["cache_hit"].as_bool()),
        (Some(true), Some(true))
    );
}

/// The emulator's registry endpoint accepts the credentials' format and
/// stores the image, but does not itself check passwords or session
/// policies; what the credentials may reach is proven against the session
/// policy by the scoping tests in `src/policy.rs`.
#[tokio::test]
async fn the_returned_credentials_push_an_image_with_skopeo() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let serve = TestServer::start(&config(&emulator, "", "")).await;
    let body = get(&url(&serve), Some(&token())).await.json();
    let creds = &body["credentials"];
    let image = body["image"].as_str().unwrap();

    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    support::oci::write_layout(&layout, "v1", b"hello from rise-registry\n");
    let dest_creds = format!(
        "{}:{}",
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap()
    );
    let out = support::oci::skopeo(
        work.path(),
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &dest_creds,
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{image}:v1"),
        ],
    );
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The registry now lists the tag.
    let admin = emulator.admin_config().await;
    let images = aws_sdk_ecr::Client::new(&admin)
        .list_images()
        .repository_name("rise/my-app")
        .send()
        .await
        .expect("ListImages")
        .image_ids
        .unwrap_or_default();
    assert!(
        images.iter().any(|i| i.image_tag.as_deref() == Some("v1")),
        "{images:?}"
    );
}

#[tokio::test]
async fn an_outage_with_nothing_cached_is_a_503_until_aws_returns() {
    let mut emulator = Emulator::start();
    support::provision(&emulator).await;
    let serve = TestServer::start(&config(&emulator, "", "")).await;
    emulator.stop();
    let down = get(&url(&serve), Some(&token())).await;
    assert_eq!(down.status, 503, "{}", down.body);
    let retry: u64 = down.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(
        get(&serve.url("/healthz"), None).await.status,
        200,
        "still alive"
    );

    emulator.restart();
    support::provision(&emulator).await;
    pass(Duration::from_secs(retry)).await;
    let back = get(&url(&serve), Some(&token())).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert!(!serve.logs().contains("panicked"), "{}", serve.logs());
}

/// docs/registry.md states only what AWS documents about an ECR login's
/// lifetime: the token's 12 hours, the role-chained session's hour, and
/// that the link between the two is not documented; serve reports the
/// earlier (checked above, `expires_in` within the session's 3600 s).
#[test]
fn the_docs_state_what_aws_documents_about_the_login_lifetime() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/registry.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for said in [
        "a token valid for 12 hours",
        "AWS does not document whether a token stops working when the session that fetched it ends",
        "serve reports the earlier of the two instants",
    ] {
        assert!(doc.contains(said), "docs/registry.md should say: {said}");
    }
    assert!(
        !doc.contains("valid for at most one hour"),
        "an undocumented claim about the login's lifetime"
    );
}

/// While AWS fails, `/readyz` stays 200 (the replica can still serve from
/// its cache) and says the provider is unreachable, asking AWS at most once
/// per probe interval: a burst of readiness checks (every kubelet, every
/// replica) costs one AWS probe, not one each. The proxy answers every call
/// with throttling and counts the attempts.
#[tokio::test]
async fn readiness_checks_do_not_hammer_a_failing_aws() {
    let emulator = Emulator::start();
    let proxy = support::throttle::ThrottlingProxy::start(emulator.addr, 100);
    let cfg = config(&emulator, "", "").replace(&emulator.endpoint_url(), &proxy.url());
    let serve = TestServer::start(&cfg).await;
    let first = get(&serve.url("/readyz"), None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["provider"], "unreachable", "{}", first.body);
    let one_probe = proxy.throttled();
    assert!(one_probe >= 1, "the first check asks AWS");
    for _ in 0..20 {
        let again = get(&serve.url("/readyz"), None).await;
        assert_eq!(again.json()["provider"], "unreachable");
    }
    assert_eq!(
        proxy.throttled(),
        one_probe,
        "no AWS call within the interval"
    );
    // After the interval, the next check probes again.
    pass(Duration::from_secs(6)).await;
    assert_eq!(
        get(&serve.url("/readyz"), None).await.json()["provider"],
        "unreachable"
    );
    assert!(proxy.throttled() > one_probe);
}

/// Throttled AWS answers are counted by operation, the SDK's retries
/// included, which the throttling alert reads: a request that ends in 503
/// after three throttled AssumeRole attempts counts three.
#[tokio::test]
async fn throttled_answers_are_counted_by_operation() {
    let emulator = Emulator::start();
    let proxy = support::throttle::ThrottlingProxy::start(emulator.addr, 100);
    let cfg = config(&emulator, "", "").replace(&emulator.endpoint_url(), &proxy.url());
    let serve = TestServer::start(&cfg).await;
    let series = "rise_registry_provider_throttled_total{operation=\"AssumeRole\"} ";
    let text = get(&serve.url("/metrics"), None).await.body;
    assert!(text.contains(&format!("{series}0\n")), "{text}");
    let answer = get(&url(&serve), Some(&token())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    let counted = metric(&serve, series).await;
    let text = get(&serve.url("/metrics"), None).await.body;
    assert!(counted >= 2, "retries included: {counted}\n{text}");
    assert_eq!(
        counted,
        proxy.throttled(),
        "every throttled answer, no other"
    );
}

/// With AWS stopped, a replica stays ready: cached projects keep getting
/// credentials, `/readyz` answers 200 and says the provider is
/// unreachable, and a project with nothing cached gets 503 with
/// `Retry-After`, which `login` and CI retry.
#[tokio::test]
async fn with_aws_down_a_replica_stays_ready_and_serves_its_cache() {
    let mut emulator = Emulator::start();
    support::provision(&emulator).await;
    let text = config(&emulator, "", "").replace(
        r#"  - {name: my-app, access: ["group:team-a"]}"#,
        "  - {name: my-app, access: [\"group:team-a\"]}\n  - {name: cold-app, access: [\"group:team-a\"]}",
    );
    assert!(text.contains("cold-app"));
    let serve = TestServer::start(&text).await;
    assert_eq!(get(&url(&serve), Some(&token())).await.status, 200);
    emulator.stop();
    let ready = get(&serve.url("/readyz"), None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    // (`provider` still says `ok`: an AWS call succeeded within the
    // minute; `readiness_checks_do_not_hammer_a_failing_aws` sees it say
    // `unreachable`.)
    assert_eq!(ready.json()["status"], "ready");
    let cached = get(&url(&serve), Some(&token())).await;
    assert_eq!(cached.status, 200, "{}", cached.body);
    let cold = get(
        &serve.url("/registry/credentials?project=cold-app"),
        Some(&token()),
    )
    .await;
    assert_eq!(cold.status, 503, "{}", cold.body);
    assert!(cold.header("retry-after").is_some());
}

/// `access=pull`: a session of its own (cached apart from push), granted
/// to `pull_access` for pull only, counted and audited as pull, and the
/// credentials read the project's images.
#[tokio::test]
async fn pull_credentials_are_a_session_of_their_own() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let text = config(&emulator, "", "").replace(
        r#"  - {name: my-app, access: ["group:team-a"]}"#,
        r#"  - {name: my-app, access: ["group:team-a"], pull_access: ["user:deployer"]}"#,
    );
    assert!(text.contains("pull_access"));
    let serve = TestServer::start(&text).await;
    let pull_url = serve.url("/registry/credentials?project=my-app&access=pull");
    let deployer = hs256(SECRET, &claims("deployer", None, &[]));

    let push = get(&url(&serve), Some(&token())).await;
    assert_eq!(push.status, 200, "{}", push.body);
    let pull = get(&pull_url, Some(&token())).await;
    assert_eq!(pull.status, 200, "{}", pull.body);
    let password = |r: &support::http::Reply| {
        r.json()["credentials"]["password"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(password(&push), password(&pull), "two sessions");
    assert_eq!(push.json()["image"], pull.json()["image"]);

    // pull_access: pull, from the cache; push is the same 404 as any denial.
    let deployer_pull = get(&pull_url, Some(&deployer)).await;
    assert_eq!(deployer_pull.status, 200, "{}", deployer_pull.body);
    assert_eq!(password(&deployer_pull), password(&pull));
    let deployer_push = get(&url(&serve), Some(&deployer)).await;
    assert_eq!(deployer_push.status, 404, "{}", deployer_push.body);
    let bogus = get(
        &serve.url("/registry/credentials?project=my-app&access=write"),
        Some(&token()),
    )
    .await;
    assert_eq!(bogus.status, 400, "{}", bogus.body);

    assert_eq!(
        metric(&serve, "rise_registry_provider_calls_total{result=\"ok\"}").await,
        2,
        "one AssumeRole per access kind"
    );
    let series =
        "rise_registry_credential_requests_total{access=\"pull\",provider=\"ecr\",outcome=";
    assert_eq!(metric(&serve, &format!("{series}\"issued\"}}")).await, 1);
    assert_eq!(metric(&serve, &format!("{series}\"cache_hit\"}}")).await, 1);
    let lines = serve.audit(5);
    assert_eq!(lines[1]["access"], "pull");
    assert_eq!(lines[0]["access"], "push");
    assert_eq!(lines[2]["grant"], "pull_access via user:deployer");
    assert_eq!(lines[3]["outcome"], "not_permitted");
    assert_eq!(lines[4]["outcome"], "bad_request");

    // The pull credentials read what push credentials wrote.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    support::oci::write_layout(&layout, "v1", b"pulled by a deployment\n");
    let image = push.json()["image"].as_str().unwrap().to_string();
    let creds = |r: &support::http::Reply| format!("AWS:{}", password(r));
    let out = support::oci::skopeo(
        work.path(),
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds(&push),
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{image}:v1"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = support::oci::skopeo(
        work.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds(&deployer_pull),
            &format!("docker://{image}:v1"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
