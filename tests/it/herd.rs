//! serve at AWS's request quotas: a herd of CI jobs for distinct projects
//! arrives at once, in front of a proxy that throttles
//! `GetAuthorizationToken` per account as AWS documents it (a bucket
//! refilled at a rate). serve paces its calls to the quota, queues fairly
//! up to `server.credential_cache.max_wait_seconds`, tells those it cannot
//! serve in time when to come back, and renews credentials used lately
//! before they run low. Scaled down from AWS's 20/s and 200 so a test takes
//! seconds; `benches/herd.rs` runs the real figures.

use crate::support;

use std::time::{Duration, Instant};

use support::Emulator;
use support::http::get;
use support::in_process::TestServer;
use support::jwt::{claims, hs256};
use support::throttle::{Latency, Tagging, ThrottlingProxy};

const SECRET: &str = "herd-test-secret-herd-test-secret-012345";

/// serve for `projects` projects named `p000`…, reaching AWS through
/// `proxy`, with `rates` as `registry.aws_rates` and `cache` as
/// `server.credential_cache`.
fn config(
    emulator: &Emulator,
    proxy: &ThrottlingProxy,
    projects: usize,
    rates: &str,
    cache: &str,
) -> String {
    let names: Vec<String> = (0..projects)
        .map(|i| format!("  - {{name: p{i:03}, access: [\"group:ci\"]}}"))
        .collect();
    format!(
        "{}  aws_rates: {rates}\nprojects:\n{}\nauth: {{hs256_secret: {SECRET}}}\nserver:\n  credential_cache: {cache}\n  rate_limit: {{requests_per_minute: 100000, burst: 100000}}\n",
        emulator
            .registry_block()
            .replace(&emulator.endpoint_url(), &proxy.url()),
        names.join("\n")
    )
}

fn token() -> String {
    hs256(SECRET, &claims("ci-job", None, &["ci"]))
}

/// AWS's quota in front of the emulator: `GetAuthorizationToken` at
/// `per_second` with a bucket of `burst`, 5 ms a call.
fn quota(emulator: &Emulator, per_second: u32, burst: u32) -> ThrottlingProxy {
    ThrottlingProxy::aws_like(
        emulator.addr,
        Latency {
            delay: Duration::from_millis(5),
            rate: None,
            tagging: Tagging::Forward,
            quotas: vec![("GetAuthorizationToken", per_second, burst)],
        },
    )
}

async fn metric(serve: &TestServer, prefix: &str) -> f64 {
    get(&serve.url("/metrics"), None)
        .await
        .body
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// 400 jobs for 400 projects at once, AWS's quota of 20 a second with a
/// bucket of 200: every job gets credentials, the last within the quota's
/// own limit ((400 − 200) / 20 = 10 s) and a margin, with one
/// `AssumeRole` and one `GetAuthorizationToken` per project and no call
/// throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_is_served_at_the_quota_without_a_wasted_call() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let proxy = quota(&emulator, 20, 200);
    let serve = TestServer::start(&config(
        &emulator,
        &proxy,
        400,
        "{get_authorization_token: {per_second: 20, burst: 200}}",
        "{max_wait_seconds: 60}",
    ))
    .await;
    let token = token();
    let started = Instant::now();
    let requests = (0..400).map(|i| {
        let url = serve.url(&format!("/registry/credentials?project=p{i:03}"));
        let token = token.clone();
        tokio::spawn(async move {
            let reply = get(&url, Some(&token)).await;
            (reply.status.as_u16(), started.elapsed())
        })
    });
    let mut last = Duration::ZERO;
    for request in requests.collect::<Vec<_>>() {
        let (status, took) = request.await.unwrap();
        assert_eq!(status, 200, "{}", serve.logs());
        last = last.max(took);
    }
    let limit = (400.0 - 200.0) / 20.0;
    assert!(
        last.as_secs_f64() >= limit * 0.9 && last.as_secs_f64() <= limit * 1.25 + 5.0,
        "the last credential after {last:?}, the quota's limit {limit} s"
    );
    // One of each per project, paced: the goal allows 1.1 logins
    // and 1.0 AssumeRole per credential; a loaded test machine may see the
    // SDK try a slow call again.
    let (logins, sessions) = (
        proxy.calls("GetAuthorizationToken"),
        proxy.calls("AssumeRole"),
    );
    assert!(
        (400..=440).contains(&logins) && (400..=404).contains(&sessions),
        "{logins} logins, {sessions} sessions:\n{}",
        serve.logs()
    );
    assert!(
        proxy.throttled() <= 3,
        "paced, hardly ever throttled: {}",
        proxy.throttled()
    );
    assert!(metric(&serve, "rise_registry_provider_queue_wait_seconds_total ").await > 500.0);
    let audit = serve.audit(400);
    let waited = audit
        .iter()
        .filter(|l| l["wait_ms"].as_u64().unwrap_or(0) > 1000)
        .count();
    assert!(waited > 150, "the audit line records the wait: {waited}");
}

/// With room for 2 s of queue, a herd of 300 gets the first ~230 served and
/// the rest a 503 at once, each with a `Retry-After` from the queue's
/// length, having cost AWS nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_deadline_a_request_is_told_when_its_turn_would_come() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let proxy = quota(&emulator, 20, 200);
    let serve = TestServer::start(&config(
        &emulator,
        &proxy,
        300,
        "{get_authorization_token: {per_second: 20, burst: 200}}",
        "{max_wait_seconds: 2}",
    ))
    .await;
    let token = token();
    let requests: Vec<_> = (0..300)
        .map(|i| {
            let url = serve.url(&format!("/registry/credentials?project=p{i:03}"));
            let token = token.clone();
            tokio::spawn(async move { get(&url, Some(&token)).await })
        })
        .collect();
    let mut retry_afters = Vec::new();
    let mut served = 0;
    for request in requests {
        let reply = request.await.unwrap();
        match reply.status.as_u16() {
            200 => served += 1,
            503 => {
                let retry: u64 = reply.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                retry_afters.push(retry);
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    // serve spends 95% of the quota: 190 at once, then 19 a second for the
    // 2 s a request may wait, and more for the time the herd took to
    // arrive (on a loaded machine, a second or so); the rest are refused.
    let text = get(&serve.url("/metrics"), None).await.body;
    assert!((225..=290).contains(&served), "{served} served\n{text}");
    assert_eq!(served + retry_afters.len(), 300);
    // Refused at once, as serve measured it (this test's own clock counts
    // the time the loaded machine took to send the answer).
    for line in serve
        .audit(300)
        .iter()
        .filter(|l| l["outcome"] == "unavailable")
    {
        assert!(
            line["wait_ms"].as_u64().unwrap_or(0) < 100,
            "refused at once, not after waiting: {line}"
        );
    }
    // The queue's end was 2 s and a little away: come back in 3 s (whole
    // seconds, rounded up), from the queue's length, not a fixed number.
    assert!(
        retry_afters.iter().all(|r| (3..=4).contains(r)),
        "{retry_afters:?}"
    );
    // A refused request costs AWS nothing: one session and one login per
    // credential served (a slow call the SDK tried again aside).
    let (logins, sessions) = (
        proxy.calls("GetAuthorizationToken"),
        proxy.calls("AssumeRole"),
    );
    let count = served as u64;
    assert!(
        (count..=count + 2).contains(&logins) && (count..=count + 2).contains(&sessions),
        "{served} served: {logins} logins, {sessions} sessions, throttled {} {}\n{}",
        proxy.throttled_calls("GetAuthorizationToken"),
        proxy.throttled_calls("AssumeRole"),
        serve.logs()
    );
    assert_eq!(
        metric(
            &serve,
            "rise_registry_provider_queue_turns_total{result=\"refused\"} "
        )
        .await as usize,
        retry_afters.len()
    );
}

/// Credentials handed out lately are renewed in the background before
/// they fall below the floor, so a job that comes back later is answered
/// from the cache: no cold issuance on its path.
#[tokio::test]
async fn credentials_used_lately_are_renewed_before_they_run_low() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let proxy = quota(&emulator, 20, 200);
    let mut serve = TestServer::start(&config(
        &emulator,
        &proxy,
        3,
        "{}",
        "{min_remaining_seconds: 60, renew_ahead_seconds: 300}",
    ))
    .await;
    serve.renew_ahead();
    let token = token();
    for i in 0..2 {
        let reply = get(
            &serve.url(&format!("/registry/credentials?project=p{i:03}")),
            Some(&token),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let issued = proxy.calls("GetAuthorizationToken");
    assert_eq!(issued, 2);
    // 55 minutes on: the credentials (an hour) have 5 minutes left, inside
    // the 5 + 1 minutes of renewal.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(55 * 60)).await;
    tokio::time::resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&serve, "rise_registry_credential_renewals_total ").await < 2.0 {
        assert!(Instant::now() < deadline, "not renewed:\n{}", serve.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxy.calls("GetAuthorizationToken"),
        issued + 2,
        "renewed once each"
    );
    // A while later still, past the old credentials' floor: answered from
    // the cache with the renewed ones.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    tokio::time::resume();
    for i in 0..2 {
        let reply = get(
            &serve.url(&format!("/registry/credentials?project=p{i:03}")),
            Some(&token),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            serve.last_audit()["cache_hit"] == true,
            "{}",
            serve.last_audit()
        );
    }
    assert_eq!(
        proxy.calls("GetAuthorizationToken"),
        issued + 2,
        "no cold issuance"
    );
    // The project never asked for is not renewed: nothing was cached.
    assert_eq!(
        metric(&serve, "rise_registry_credential_renewals_total ").await,
        2.0
    );
}
