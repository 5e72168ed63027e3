//! The project store and the controller, measured against the real
//! things: two serve replicas on one PostgreSQL, the AWS emulator behind a
//! proxy that adds 30 ms to every AWS call (a nearby region), and the
//! controller on.
//!
//! - a PUT on one replica → credentials on the other (propagation and the
//!   repository made), PUT → `ready`, DELETE → row gone (repository
//!   orphaned): p50 and p99 over `BENCH_CHANGES` projects, one at a time;
//! - the leader killed with SIGKILL → the other replica leads, beside the
//!   lease's lifetime, over `BENCH_KILLS` kills;
//! - 10,000 projects in the store: serve's start-up until it listens, its
//!   memory, and cached credential throughput for a store project beside
//!   the same serve with one project in config (wrk, medians of
//!   `BENCH_RUNS` interleaved runs).
//!
//! Run it with `scripts/bench`; docs/performance.md explains the table.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;
use support::jwt::{claims, hs256};
use support::postgres::Postgres;
use support::server::Serve;
use support::throttle::{Latency, ThrottlingProxy};
use support::wrk::{env_or, summarize, wrk};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";
const LEASE_SECONDS: u64 = 5;

fn config(endpoint: &str, store: Option<&str>, controller: bool, projects: &str) -> String {
    let store = store
        .map(|url| format!("store: {{url: \"{url}\"}}\n"))
        .unwrap_or_default();
    let controller = if controller {
        format!("controller: {{enabled: true, lease_seconds: {LEASE_SECONDS}}}\n")
    } else {
        String::new()
    };
    format!(
        r#"{}projects: {projects}
auth:
  hs256_secret: {SECRET}
  issuer: bench-issuer
  audience: rise
  project_managers: ["user:platform-backend"]
server:
  rate_limit: {{requests_per_minute: 1000000, burst: 1000000}}
{store}{controller}"#,
        support::ecr_yaml(Some(endpoint))
    )
}

fn token(sub: &str) -> String {
    let mut c = claims(sub, None, &["team-a"]);
    c["exp"] = json!(support::jwt::now() + 3600);
    c["iss"] = json!("bench-issuer");
    c["aud"] = json!("rise");
    hs256(SECRET, &c)
}

async fn request(
    serve: &Serve,
    method: Method,
    path: &str,
    sub: &str,
    body: &str,
) -> (u16, String) {
    let auth = format!("Bearer {}", token(sub));
    let reply = support::http::send(
        method,
        &serve.url(path),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    (reply.status.as_u16(), reply.body)
}

/// Polls until `done`; the time it took.
async fn until<F, Fut>(what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn row(name: &str, values: Vec<f64>, baseline: &str) {
    println!(
        "| {name} | p50 {:.0} ms, p99 {:.0} ms (n={}) | {baseline} |",
        percentile(values.clone(), 0.5),
        percentile(values.clone(), 0.99),
        values.len()
    );
}

fn leader_of(replicas: &[Serve]) -> Option<usize> {
    replicas
        .iter()
        .position(|r| r.metric("rise_registry_controller_leader") == 1.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return;
    }
    let changes = env_or("BENCH_CHANGES", 40) as usize;
    let kills = env_or("BENCH_KILLS", 2) as usize;
    let runs = env_or("BENCH_RUNS", 3) as usize;
    let seconds = env_or("BENCH_SECONDS", 8);
    let connections = env_or("BENCH_CONNECTIONS", 64);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();

    let emulator = support::Emulator::start();
    rt.block_on(support::provision(&emulator));
    let proxy = ThrottlingProxy::aws_like(emulator.addr, Latency::default());
    let pg = Postgres::start_new();
    pg.create_db("rise");
    pg.create_db("big");
    let env = [
        ("AWS_ACCESS_KEY_ID", support::ADMIN_KEY),
        ("AWS_SECRET_ACCESS_KEY", support::ADMIN_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("RUST_LOG", "warn"),
    ];
    let my_app = r#"[{name: my-app, access: ["group:team-a"]}]"#;

    println!("| measurement | figure | baseline (same run) |");
    println!("|---|---|---|");

    // Changes through the API, two replicas, the controller on.
    let cfg = config(&proxy.url(), Some(&pg.url("rise")), true, my_app);
    let mut replicas = vec![Serve::start(&cfg, &env), Serve::start(&cfg, &env)];
    rt.block_on(until("a leader", || async {
        leader_of(&replicas).is_some()
    }));
    let (mut to_creds, mut to_ready, mut to_gone) = (Vec::new(), Vec::new(), Vec::new());
    eprintln!("{changes} projects made and deleted, one at a time");
    for i in 0..changes {
        let name = format!("bench-{i}");
        let path = format!("/registry/projects/{name}");
        let (a, b) = (&replicas[i % 2], &replicas[(i + 1) % 2]);
        rt.block_on(async {
            let started = Instant::now();
            let (status, body) = request(
                a,
                Method::PUT,
                &path,
                "platform-backend",
                r#"{"access": ["group:team-a"]}"#,
            )
            .await;
            assert_eq!(status, 201, "{body}");
            let creds = format!("/registry/credentials?project={name}");
            let ready = "\"state\":\"ready\"";
            let mut seen_ready = None;
            loop {
                if seen_ready.is_none()
                    && request(a, Method::GET, &path, "platform-backend", "")
                        .await
                        .1
                        .contains(ready)
                {
                    seen_ready = Some(started.elapsed());
                }
                if request(b, Method::GET, &creds, "dev", "").await.0 == 200 {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{name}: no credentials on the other replica"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            to_creds.push(started.elapsed().as_secs_f64() * 1000.0);
            let ready_at = match seen_ready {
                Some(t) => t,
                None => {
                    until("ready", || async {
                        request(a, Method::GET, &path, "platform-backend", "")
                            .await
                            .1
                            .contains(ready)
                    })
                    .await
                        + started.elapsed()
                }
            };
            to_ready.push(ready_at.as_secs_f64() * 1000.0);
            let started = Instant::now();
            let (status, _) = request(b, Method::DELETE, &path, "platform-backend", "").await;
            assert_eq!(status, 202);
            until("gone", || async {
                request(a, Method::GET, &path, "platform-backend", "")
                    .await
                    .0
                    == 404
            })
            .await;
            to_gone.push(started.elapsed().as_secs_f64() * 1000.0);
        });
    }
    row(
        "PUT on one replica → credentials on the other",
        to_creds,
        "goal: p99 ≤ 2,000 ms",
    );
    row("PUT → repository `ready`", to_ready, "goal: p99 ≤ 5,000 ms");
    row(
        "DELETE → orphaned, row gone",
        to_gone,
        "goal: p99 ≤ 5,000 ms",
    );

    // The leader killed.
    let mut takeovers = Vec::new();
    for k in 0..kills {
        let leader = leader_of(&replicas).expect("a leader");
        eprintln!("kill {}/{kills}: SIGKILL to the leader", k + 1);
        replicas[leader].signal("KILL");
        let started = Instant::now();
        let other = 1 - leader;
        rt.block_on(until("the other replica leads", || async {
            replicas[other].metric("rise_registry_controller_leader") == 1.0
        }));
        takeovers.push(started.elapsed().as_secs_f64() * 1000.0);
        replicas[leader] = Serve::start(&cfg, &env);
    }
    row(
        "leader SIGKILL → the other replica leads",
        takeovers,
        &format!("lease {LEASE_SECONDS} s; goal ≤ lease + 5 s"),
    );
    drop(replicas);

    // Ten thousand projects in the store.
    pg.psql("big", "SELECT 1");
    let big_cfg = config(&proxy.url(), Some(&pg.url("big")), false, "[]");
    drop(Serve::start(&big_cfg, &env)); // migrates
    pg.psql(
        "big",
        "INSERT INTO rise_projects (name, spec, revision, created_ms, updated_at, state) \
         SELECT 'p' || i, '{\"access\": [\"group:team-a\"], \"pull_access\": []}', 1, 1, 1, 'ready' \
         FROM generate_series(0, 9999) AS i",
    );
    pg.psql(
        "big",
        "INSERT INTO rise_projects (name, spec, revision, created_ms, updated_at, state) \
         VALUES ('my-app', '{\"access\": [\"group:team-a\"], \"pull_access\": []}', 1, 1, 1, 'ready')",
    );
    // Ready: the first credentials of a store project answered (serve
    // reads the whole store before its accept loop starts).
    let creds = "/registry/credentials?project=my-app";
    let started = Instant::now();
    let big = Serve::start(&big_cfg, &env);
    let (status, body) = rt.block_on(request(&big, Method::GET, creds, "bench-caller", ""));
    assert_eq!(status, 200, "{body}");
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    let small = Serve::start(&config(&proxy.url(), None, false, my_app), &env);
    let tok = token("bench-caller");
    let (status, body) = rt.block_on(request(&small, Method::GET, creds, "bench-caller", ""));
    assert_eq!(status, 200, "{body}");
    let rss_big = big.memory_kib("VmRSS:");
    let rss_small = small.memory_kib("VmRSS:");
    let (mut with_store, mut config_only) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        eprintln!(
            "round {round}/{runs}: cached credentials, 10,000 store projects / config only ({seconds} s each)"
        );
        with_store.push(wrk(&big.url(creds), Some(&tok), seconds, connections));
        config_only.push(wrk(&small.url(creds), Some(&tok), seconds, connections));
    }
    let (w, c) = (summarize(&with_store), summarize(&config_only));
    println!(
        "| 10,000 store projects: serve start until its first credentials | {start_ms:.0} ms (one AWS issuance included) | goal ≤ 5,000 ms |"
    );
    println!(
        "| 10,000 store projects: resident memory after start | {:.1} MiB | {:.1} MiB with one config project; goal ≤ 64 MiB |",
        rss_big as f64 / 1024.0,
        rss_small as f64 / 1024.0
    );
    println!(
        "| 10,000 store projects: cached credentials | {:.0} req/s, p99 {:.2} ms | {:.0} req/s, p99 {:.2} ms config only ({:.2}×); goal within 10% |",
        w.rps,
        w.p99_ms,
        c.rps,
        c.p99_ms,
        w.rps / c.rps
    );
}
