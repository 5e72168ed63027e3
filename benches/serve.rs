//! serve under load, measured with wrk beside a bare hyper baseline in the
//! same run: cached ECR credentials with HS256 and with RS256 (JWKS)
//! tokens, and with a CI system's RS256 token admitted by a workload rule
//! (`auth.issuers`); the cold path (AssumeRole + GetAuthorizationToken through
//! serve) beside the same provider call made in-process; 50 concurrent cold
//! requests for one project (single flight) beside 50 for 50 projects; and
//! serve's memory under load; and the two kinds of denial (a forbidden
//! and an unknown project) side by side, which must take the same time so
//! timing tells a caller nothing. Run it with `scripts/bench` (which installs
//! wrk and the emulator); docs/performance.md explains the table.
//!
//! Settings (environment): `BENCH_RUNS` (default 3, the median is
//! reported), `BENCH_SECONDS` per run (default 8), `BENCH_CONNECTIONS`
//! (default 64).

#[path = "../tests/it/support/mod.rs"]
mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::jwt::{TestKey, claims, hs256};
use support::server::{JwksServer, Serve};
use support::wrk::{Expect, Run, env_or, median, summarize, wrk, wrk_expecting};
use support::{ACCOUNT_ID, Emulator};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";

/// A response of the size of a credentials answer.
const BASELINE_BODY: &str = r#"{"credentials":{"registry_url":"127.0.0.1:4566","username":"AWS","password":"eyJwYXlsb2FkIjoiYmFzZWxpbmUtYmFzZWxpbmUtYmFzZWxpbmUtYmFzZWxpbmUiLCJkYXRha2V5IjoiYmFzZWxpbmUifQ","expires_in":3542,"expires_at":"2026-01-01T12:00:00Z"},"repository":"my-app","image":"127.0.0.1:4566/rise/my-app"}"#;

fn main() {
    // `cargo bench` passes `--bench`. Without it this is a test run
    // (`cargo test --benches`) or a listing (`--list`): a benchmark takes
    // minutes and measures nothing in a debug build, so do nothing.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return;
    }
    let runs = env_or("BENCH_RUNS", 3) as usize;
    let seconds = env_or("BENCH_SECONDS", 8);
    let connections = env_or("BENCH_CONNECTIONS", 64);
    // SAFETY: nothing else runs yet; the in-process provider of the cold
    // baseline reads the emulator's key from the default chain, as serve does.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();

    let emulator = Emulator::start();
    rt.block_on(support::provision(&emulator));
    let rs = TestKey::rs256("bench-rs");
    let jwks = JwksServer::start(support::jwt::jwks(&[&rs]));
    // A CI system's issuer, its jobs admitted by a workload rule.
    let ci = TestKey::rs256("bench-ci");
    let ci_jwks = JwksServer::start(support::jwt::jwks(&[&ci]));
    let config = format!(
        r#"
registry:
  type: ecr
  region: us-east-1
  account_id: "{ACCOUNT_ID}"
  role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend
  push_role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend-ecr-push
  endpoint_url: {}
projects:
  - name: my-app
    access:
      - group:team-a
      - {{issuer: ci, claims: {{repository: acme/my-app, event_name: [push, workflow_dispatch]}}, claims_like: {{ref: "refs/heads/*"}}}}
  - {{name: other-app, access: ["group:team-z"]}}
{}
auth:
  hs256_secret: {SECRET}
  jwks_url: "{}"
  issuer: bench-issuer
  audience: rise
  issuers: [{{name: ci, issuer: "https://ci.bench.example", audience: rise, jwks_url: "{}"}}]
server:
  rate_limit: {{requests_per_minute: 1000000, burst: 1000000}}
"#,
        emulator.endpoint_url(),
        cold_projects(runs),
        jwks.url,
        ci_jwks.url
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("RUST_LOG", "warn"),
    ];
    let serve = Serve::start(&config, &env);
    let url = serve.url("/registry/credentials?project=my-app");
    // One caller per run, each with a fresh rate-limit bucket of a million.
    let caller = |name: String| {
        let mut c = claims(&name, None, &["team-a"]);
        c["exp"] = serde_json::json!(support::jwt::now() + 3600);
        c["iss"] = serde_json::json!("bench-issuer");
        c["aud"] = serde_json::json!("rise");
        c
    };
    // Warm the cache; every measured request is a cache hit.
    let warm = rt.block_on(support::http::get(
        &url,
        Some(&hs256(SECRET, &caller("warm".into()))),
    ));
    assert_eq!(warm.status, 200, "{}", warm.body);

    // The baseline: hyper 1 on its own two-worker runtime, fixed body, no work.
    let baseline = support::http::spawn_server(|_req| async {
        hyper::Response::new(Full::new(Bytes::from_static(BASELINE_BODY.as_bytes())))
    });
    let baseline_url = format!(
        "http://{}/registry/credentials?project=my-app",
        baseline.addr
    );
    let rss_idle = serve.memory_kib("VmRSS:");

    // Interleave the cases in each round so drift on a noisy machine hits all alike.
    let (mut base, mut hs, mut rs_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut workload_runs = Vec::new();
    // A GitHub Actions job's claims (the ones the rule reads, and the rest).
    let job = |run: String| {
        serde_json::json!({
            "iss": "https://ci.bench.example", "aud": "rise",
            "sub": format!("repo:acme/my-app:ref:refs/heads/{run}"),
            "repository": "acme/my-app", "repository_owner": "acme",
            "ref": format!("refs/heads/{run}"), "ref_type": "branch",
            "event_name": "push", "workflow": "image", "actor": "octocat",
            "run_id": "1", "sha": "0123456789abcdef0123456789abcdef01234567",
            "iat": support::jwt::now(), "exp": support::jwt::now() + 3600,
        })
    };
    let (mut forbidden, mut unknown) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        eprintln!(
            "round {round}/{runs}: baseline, HS256, RS256, RS256 workload, forbidden, unknown ({seconds} s each, {connections} connections)"
        );
        let denied_token = hs256(SECRET, &caller(format!("denied-{round}")));
        forbidden.push(wrk_expecting(
            Expect::Denied,
            &serve.url("/registry/credentials?project=other-app"),
            Some(&denied_token),
            seconds,
            connections,
        ));
        unknown.push(wrk_expecting(
            Expect::Denied,
            &serve.url("/registry/credentials?project=nope-app"),
            Some(&denied_token),
            seconds,
            connections,
        ));
        let hs_token = hs256(SECRET, &caller(format!("hs-{round}")));
        // The same request bytes, token included, so both parse as much.
        base.push(wrk(&baseline_url, Some(&hs_token), seconds, connections));
        hs.push(wrk(&url, Some(&hs_token), seconds, connections));
        let rs_token = rs.sign(&caller(format!("rs-{round}")));
        rs_runs.push(wrk(&url, Some(&rs_token), seconds, connections));
        let workload_token = ci.sign(&job(format!("bench-{round}")));
        workload_runs.push(wrk(&url, Some(&workload_token), seconds, connections));
    }
    let workload = summarize(&workload_runs);
    let peak_kib = serve.memory_kib("VmHWM:");
    let (base, hs, rs_sum) = (summarize(&base), summarize(&hs), summarize(&rs_runs));
    let (forbidden, unknown) = (summarize(&forbidden), summarize(&unknown));

    // The cold path and single flight, on projects nobody asked for yet.
    let ecr_config = match support::load_config(&[("default.yaml", &config)], &[])
        .expect("the bench config loads")
        .registry
    {
        rise_registry::config::RegistryConfig::Ecr(ecr) => ecr,
        _ => unreachable!("the bench config is ECR"),
    };
    let provider = rt
        .block_on(rise_registry::registry::ecr::EcrProvider::new(&ecr_config))
        .expect("the in-process provider");
    let token = hs256(SECRET, &caller("cold".into()));
    let (mut cold, mut direct, mut one, mut many) = (vec![], vec![], vec![], vec![]);
    let (mut one_calls, mut many_calls) = (0.0, 0.0);
    for round in 0..runs {
        eprintln!("round {}/{runs}: cold path and single flight", round + 1);
        for i in 0..COLD_SAMPLES {
            let project = format!("c{round}-{i:02}");
            let started = std::time::Instant::now();
            let reply = rt.block_on(support::http::get(
                &serve.url(&format!("/registry/credentials?project={project}")),
                Some(&token),
            ));
            assert_eq!(reply.status, 200, "{}", reply.body);
            cold.push(started.elapsed().as_secs_f64() * 1000.0);
            let name =
                rise_registry::naming::ProjectName::parse(&format!("d{round}-{i:02}")).unwrap();
            let started = std::time::Instant::now();
            rt.block_on(provider.credentials(&name, rise_registry::auth::AccessKind::Push))
                .expect("in-process credentials");
            direct.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let (t, calls) = rt.block_on(concurrent_cold(&serve, &token, |_| format!("s{round}")));
        one.push(t);
        one_calls = calls;
        let (t, calls) = rt.block_on(concurrent_cold(&serve, &token, |i| {
            format!("m{round}-{i:02}")
        }));
        many.push(t);
        many_calls = calls;
    }
    let (cold, direct, one, many) = (median(cold), median(direct), median(one), median(many));

    header();
    let hyper_cell = |r: Run| {
        format!(
            "bare hyper: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            r.rps, r.p50_ms, r.p99_ms
        )
    };
    for (name, r) in [
        ("cached ECR credentials, HS256 token", hs),
        ("cached ECR credentials, RS256 token (JWKS)", rs_sum),
        (
            "cached ECR credentials, RS256 CI token matched by a claim rule",
            workload,
        ),
    ] {
        println!(
            "| serve: {name} | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms | {} | {:.2}× throughput |",
            r.rps,
            r.p50_ms,
            r.p99_ms,
            hyper_cell(base),
            r.rps / base.rps
        );
    }
    println!(
        "| serve: 404 for a project the caller may not use | {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms | 404 for a project that does not exist: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms | {:.2}× the p50 |",
        forbidden.rps,
        forbidden.p50_ms,
        forbidden.p99_ms,
        unknown.rps,
        unknown.p50_ms,
        unknown.p99_ms,
        forbidden.p50_ms / unknown.p50_ms
    );
    println!(
        "| serve: cold credentials (AssumeRole + GetAuthorizationToken), one request | p50 {cold:.1} ms | the provider called in-process: p50 {direct:.1} ms | {:.2}× the time |",
        cold / direct
    );
    println!(
        "| serve: {CONCURRENT} concurrent cold requests for one project (single flight) | {one:.0} ms, {one_calls:.0} AWS round(s) | {CONCURRENT} projects at once: {many:.0} ms, {many_calls:.0} rounds | {:.2}× the time, {:.0}× fewer rounds |",
        one / many,
        many_calls / one_calls.max(1.0)
    );
    println!(
        "| serve: resident memory | {:.1} MiB peak under load | {:.1} MiB idle after warm-up | |",
        peak_kib as f64 / 1024.0,
        rss_idle as f64 / 1024.0
    );
    eprintln!(
        "serve: medians of {runs} rounds; wrk -t2, {connections} connections, {seconds} s per case; {COLD_SAMPLES} cold requests per round"
    );
    drop(serve);
    drop(emulator);
}

/// Cold requests per round for the cold-path figure.
const COLD_SAMPLES: usize = 20;
/// Requests at once for the single-flight figure.
const CONCURRENT: usize = 50;

/// Config lines for the projects the cold measurements use, fresh each round.
fn cold_projects(runs: usize) -> String {
    let mut lines = Vec::new();
    for round in 0..runs {
        let mut names: Vec<String> = (0..COLD_SAMPLES)
            .map(|i| format!("c{round}-{i:02}"))
            .collect();
        names.push(format!("s{round}"));
        names.extend((0..CONCURRENT).map(|i| format!("m{round}-{i:02}")));
        lines.extend(
            names
                .into_iter()
                .map(|n| format!("  - {{name: {n}, access: [\"group:team-a\"]}}")),
        );
    }
    lines.join("\n")
}

/// The table header every benchmark prints; `scripts/bench` keeps the first.
pub fn header() {
    println!("| measurement | rise-registry | baseline, same run | ratio |");
    println!("|---|---|---|---|");
}

/// [`CONCURRENT`] requests at once for `project(i)`: wall time in ms and
/// how many AWS rounds (AssumeRole + GetAuthorizationToken) serve made.
async fn concurrent_cold(
    serve: &Serve,
    token: &str,
    project: impl Fn(usize) -> String,
) -> (f64, f64) {
    let before = provider_calls(serve);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let url = serve.url(&format!("/registry/credentials?project={}", project(i)));
        let token = token.to_string();
        tasks.spawn(async move { support::http::get(&url, Some(&token)).await.status });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    (elapsed, provider_calls(serve) - before)
}

/// AssumeRole + GetAuthorizationToken rounds serve has made, ok or not.
fn provider_calls(serve: &Serve) -> f64 {
    serve.metric("rise_registry_provider_calls_total{result=\"ok\"}")
        + serve.metric("rise_registry_provider_calls_total{result=\"error\"}")
}
