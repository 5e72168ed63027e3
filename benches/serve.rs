//! serve under load, measured with wrk beside a bare hyper baseline in the
//! same run: cached ECR credentials with HS256 and with RS256 (JWKS)
//! tokens, and serve's memory under that load. Run it with `scripts/bench`
//! (which installs wrk and the emulator); docs/performance.md explains the
//! table.
//!
//! Settings (environment): `BENCH_RUNS` (default 3, the median is
//! reported), `BENCH_SECONDS` per run (default 8), `BENCH_CONNECTIONS`
//! (default 64).

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::jwt::{TestKey, claims, hs256};
use support::server::{JwksServer, Serve};
use support::{ACCOUNT_ID, Emulator};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";

/// A response of the size of a credentials answer.
const BASELINE_BODY: &str = r#"{"credentials":{"registry_url":"127.0.0.1:4566","username":"AWS","password":"eyJwYXlsb2FkIjoiYmFzZWxpbmUtYmFzZWxpbmUtYmFzZWxpbmUtYmFzZWxpbmUiLCJkYXRha2V5IjoiYmFzZWxpbmUifQ","expires_in":3542,"expires_at":"2026-01-01T12:00:00Z"},"repository":"my-app","image":"127.0.0.1:4566/rise/my-app"}"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The baseline: hyper 1 on its own two-worker runtime, fixed body, no work.
fn start_baseline() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            BASELINE_BODY.as_bytes(),
                        ))))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Parses wrk's `--latency` output.
fn parse_wrk(out: &str) -> Run {
    let ms = |s: &str| -> f64 {
        let s = s.trim();
        if let Some(v) = s.strip_suffix("us") {
            v.parse::<f64>().unwrap() / 1000.0
        } else if let Some(v) = s.strip_suffix("ms") {
            v.parse().unwrap()
        } else if let Some(v) = s.strip_suffix('s') {
            v.parse::<f64>().unwrap() * 1000.0
        } else {
            panic!("unknown latency unit in {s:?}")
        }
    };
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("wrk printed no {prefix:?}:\n{out}"))
    };
    let errors = out
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(line) = errors {
        eprintln!("warning: {}", line.trim());
    }
    Run {
        rps: field("Requests/sec:").trim().parse().unwrap(),
        p50_ms: ms(&field("50%")),
        p99_ms: ms(&field("99%")),
    }
}

fn wrk(url: &str, token: Option<&str>, seconds: u64, connections: u64) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk is installed (scripts/bench installs it)");
    assert!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summarize(runs: &[Run]) -> Run {
    Run {
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
    }
}

fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

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
    let rt = tokio::runtime::Runtime::new().unwrap();

    let emulator = Emulator::start();
    rt.block_on(support::provision(&emulator));
    let rs = TestKey::rs256("bench-rs");
    let jwks = JwksServer::start(support::jwt::jwks(&[&rs]));
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
  - {{name: my-app, access: ["group:team-a"]}}
auth: {{hs256_secret: {SECRET}, jwks_url: "{}"}}
server:
  rate_limit: {{requests_per_minute: 1000000, burst: 1000000}}
"#,
        emulator.endpoint_url(),
        jwks.url
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
        c
    };
    // Warm the cache; every measured request is a cache hit.
    let warm = rt.block_on(support::http::get(
        &url,
        Some(&hs256(SECRET, &caller("warm".into()))),
    ));
    assert_eq!(warm.status, 200, "{}", warm.body);

    let baseline = start_baseline();
    let baseline_url = format!("http://{baseline}/registry/credentials?project=my-app");
    let rss_idle = memory_kib(serve.pid(), "VmRSS:");

    // Interleave the cases in each round so drift on a noisy machine hits all alike.
    let (mut base, mut hs, mut rs_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=runs {
        eprintln!(
            "round {round}/{runs}: baseline, HS256, RS256 ({seconds} s each, {connections} connections)"
        );
        let hs_token = hs256(SECRET, &caller(format!("hs-{round}")));
        // The same request bytes, token included, so both parse as much.
        base.push(wrk(&baseline_url, Some(&hs_token), seconds, connections));
        hs.push(wrk(&url, Some(&hs_token), seconds, connections));
        let rs_token = rs.sign(&caller(format!("rs-{round}")));
        rs_runs.push(wrk(&url, Some(&rs_token), seconds, connections));
    }
    let peak_kib = memory_kib(serve.pid(), "VmHWM:");
    let (base, hs, rs_sum) = (summarize(&base), summarize(&hs), summarize(&rs_runs));

    println!();
    println!(
        "serve, cached ECR credentials: medians of {runs} runs of {seconds} s, {connections} connections, wrk -t2"
    );
    println!();
    println!("| case | requests/s | ratio to baseline | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, r) in [
        ("bare hyper baseline", base),
        ("serve, HS256 token", hs),
        ("serve, RS256 token (JWKS)", rs_sum),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.rps,
            r.rps / base.rps,
            r.p50_ms,
            r.p99_ms
        );
    }
    println!();
    println!(
        "serve resident memory: {:.1} MiB idle after warm-up, {:.1} MiB peak under load",
        rss_idle as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    drop(serve);
    drop(emulator);
}
