//! A herd of CI jobs at AWS's quotas: N jobs for N distinct projects arrive
//! within 5 s at serve (the binary, ECR mode) in front of a proxy that
//! answers like AWS (30 ms a call) and throttles per account as AWS
//! documents it: `GetAuthorizationToken` 20 a second with a bucket of 200,
//! `AssumeRole` 600 a second. Each job behaves as `login` does: it asks,
//! and on 429 or 503 waits its `Retry-After` and asks again, for at most
//! its client timeout.
//!
//! Scenarios (`BENCH_HERDS`, default `1000,5000`): for each N, one replica;
//! then (`BENCH_TWO_REPLICAS`, default on) two replicas sharing the throttled
//! account, the jobs split between them; then a returning herd: the same
//! jobs once the first herd's credentials are within their renewal window
//! (a short `session_duration_seconds` and floor make that a minute),
//! which should cost no cold issuance. Reported: success rate, the time to
//! the last credential beside the quota's limit ((N − 200) / 20 s), AWS
//! calls per credential, throttled answers, and p50/p99 of a job's wait.
//! Run it with `scripts/bench`; docs/performance.md has the figures.
//!
//! Settings: `BENCH_CLIENT_TIMEOUT` (seconds, default 300: a job's patience).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::Emulator;
use support::jwt::{claims, hs256};
use support::server::Serve;
use support::throttle::{Latency, Tagging, ThrottlingProxy};
use support::wrk::env_or;

const SECRET: &str = "bench-herd-secret-bench-herd-secret-0123";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return;
    }
    let herds: Vec<usize> = std::env::var("BENCH_HERDS")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let two = env_or("BENCH_TWO_REPLICAS", 1) == 1;
    let patience = Duration::from_secs(env_or("BENCH_CLIENT_TIMEOUT", 300));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for &n in &herds {
        rows.push(rt.block_on(scenario(n, 1, patience, false)));
        if two {
            rows.push(rt.block_on(scenario(n, 2, patience, false)));
        }
    }
    if let Some(&n) = herds.first() {
        rows.push(rt.block_on(scenario(n, 1, patience, true)));
    }
    println!(
        "\n| herd | replicas | served | last credential (quota's limit) | AssumeRole / credential | GetAuthorizationToken / credential | throttled answers | wait p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

/// The config of one replica: `n` projects, AWS through `proxy`.
fn config(emulator: &Emulator, proxy: &ThrottlingProxy, n: usize, returning: bool) -> String {
    let projects: Vec<String> = (0..n)
        .map(|i| format!("  - {{name: p{i:05}, access: [\"group:ci\"]}}"))
        .collect();
    // A returning herd: credentials of 15 minutes, handed out while 14
    // are left and renewed in the last half minute of that.
    let (session, cache) = if returning {
        (
            "  session_duration_seconds: 900\n",
            "{min_remaining_seconds: 840, renew_ahead_seconds: 30}",
        )
    } else {
        ("", "{}")
    };
    format!(
        "{}{session}projects:\n{}\nauth: {{hs256_secret: {SECRET}}}\nserver:\n  max_connections: 20000\n  credential_cache: {cache}\n  rate_limit: {{requests_per_minute: 1000000, burst: 1000000}}\n",
        emulator
            .registry_block()
            .replace(&emulator.endpoint_url(), &proxy.url()),
        projects.join("\n")
    )
}

/// One job: asks until it has credentials or its patience runs out;
/// `Some(wait)` when it got them.
async fn job(url: String, token: String, patience: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        let reply = support::http::get(&url, Some(&token)).await;
        match reply.status.as_u16() {
            200 => return Some(started.elapsed()),
            429 | 503 => {
                let after = reply
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2);
                let after = Duration::from_secs(after);
                if started.elapsed() + after > patience {
                    return None;
                }
                tokio::time::sleep(after).await;
            }
            _ => return None,
        }
    }
}

/// The herd of `n` jobs, arriving within 5 s, against `replicas` serves.
async fn herd(
    n: usize,
    replicas: &[Serve],
    token: &str,
    patience: Duration,
) -> (Vec<Duration>, Duration, usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            // Spread evenly over 5 s, a replica by turns.
            let delay = Duration::from_millis((i as u64 * 5000) / n as u64);
            let url =
                replicas[i % replicas.len()].url(&format!("/registry/credentials?project=p{i:05}"));
            let token = token.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let got = job(url, token, patience).await;
                (got, started.elapsed())
            })
        })
        .collect();
    let mut waits = Vec::new();
    let mut last = Duration::ZERO;
    let mut failed = 0;
    for task in tasks {
        match task.await.unwrap() {
            (Some(wait), at) => {
                waits.push(wait);
                last = last.max(at);
            }
            (None, _) => failed += 1,
        }
    }
    (waits, last, failed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn scenario(n: usize, replicas: usize, patience: Duration, returning: bool) -> String {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let proxy = ThrottlingProxy::aws_like(
        emulator.addr,
        Latency {
            delay: Duration::from_millis(30),
            rate: None,
            tagging: Tagging::Forward,
            quotas: vec![("GetAuthorizationToken", 20, 200), ("AssumeRole", 600, 600)],
        },
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", support::ADMIN_KEY),
        ("AWS_SECRET_ACCESS_KEY", support::ADMIN_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("RUST_LOG", "warn"),
    ];
    let cfg = config(&emulator, &proxy, n, returning);
    let serves: Vec<Serve> = (0..replicas).map(|_| Serve::start(&cfg, &env)).collect();
    let token = hs256(SECRET, &claims("ci-job", None, &["ci"]));
    let (mut waits, last, failed) = herd(n, &serves, &token, patience).await;
    let mut label = format!("{n}");
    let (mut waits, last, failed, logins, sessions, throttled) = if returning {
        // Within the renewal window: the floor is reached a minute after
        // issuance, renewal starts half a minute before. Come back when
        // every first credential is past its floor.
        label = format!("{n}, returning after 70 s");
        let (logins, sessions) = (
            proxy.calls("GetAuthorizationToken"),
            proxy.calls("AssumeRole"),
        );
        tokio::time::sleep(Duration::from_secs(70)).await;
        let renewed: f64 = serves
            .iter()
            .map(|s| s.metric("rise_registry_credential_renewals_total"))
            .sum();
        let issued_before: f64 = serves
            .iter()
            .map(|s| {
                s.metric("rise_registry_provider_calls_total{result=\"ok\"}")
                    + s.metric("rise_registry_provider_calls_total{result=\"error\"}")
            })
            .sum();
        let (again, last, failed) = herd(n, &serves, &token, patience).await;
        let issued_after: f64 = serves
            .iter()
            .map(|s| {
                s.metric("rise_registry_provider_calls_total{result=\"ok\"}")
                    + s.metric("rise_registry_provider_calls_total{result=\"error\"}")
            })
            .sum();
        label = format!(
            "{label} ({renewed} renewed ahead, {} cold issuances)",
            issued_after - issued_before
        );
        let logins = proxy.calls("GetAuthorizationToken") - logins;
        let sessions = proxy.calls("AssumeRole") - sessions;
        waits = again;
        (waits, last, failed, logins, sessions, proxy.throttled())
    } else {
        (
            waits,
            last,
            failed,
            proxy.calls("GetAuthorizationToken"),
            proxy.calls("AssumeRole"),
            proxy.throttled(),
        )
    };
    waits.sort();
    let served = waits.len();
    let limit = (n.saturating_sub(200)) as f64 / 20.0;
    let calls = logins + sessions;
    let row = format!(
        "| {label} | {replicas} | {served} / {n} ({:.1}%) | {:.1} s ({limit:.1} s) | {:.2} | {:.2} | {throttled} of {calls} ({:.1}%) | {:.2} s / {:.2} s |",
        100.0 * served as f64 / n as f64,
        last.as_secs_f64(),
        sessions as f64 / served.max(1) as f64,
        logins as f64 / served.max(1) as f64,
        100.0 * throttled as f64 / calls.max(1) as f64,
        percentile(&waits, 0.5).as_secs_f64(),
        percentile(&waits, 0.99).as_secs_f64(),
    );
    eprintln!("{row} (failed {failed})");
    row
}
