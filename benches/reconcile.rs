//! plan and apply at 100, 1,000 and 10,000 projects against the AWS
//! emulator behind a proxy that adds AWS's round trip (30 ms a request by
//! default) and, optionally, throttles above a fixed request rate. Beside
//! rise-registry, in the same run through the same proxy: a naive
//! sequential tool (one request at a time) and a Terraform-like reader
//! (per repository a describe, its tags and its lifecycle policy, 10
//! repositories at a time: Terraform's default parallelism). Run it with
//! `scripts/bench`; docs/performance.md explains the table.
//!
//! Settings (environment): `BENCH_RUNS` (default 3, medians reported),
//! `BENCH_PROJECTS` (default `100,1000`; add 10000 for the large account),
//! `BENCH_DELAY_MS` (default 30), `BENCH_RATE` (requests per second above
//! which the proxy throttles; default none), `BENCH_BASELINE_RUNS`
//! (rounds of the baselines, default `BENCH_RUNS`: at 30 ms the naive
//! tool takes 90 s a pass at 1,000 projects).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecr::types::Tag;
use support::throttle::{Latency, ThrottlingProxy};
use support::{ACCOUNT_ID, Emulator};
use tokio::sync::Semaphore;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn config(endpoint: &str, n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let projects: Vec<String> = (0..n).map(|i| format!("{{name: p{i:05}}}")).collect();
    let text = format!(
        "registry:\n  type: ecr\n  region: us-east-1\n  account_id: \"{ACCOUNT_ID}\"\n  \
         role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend\n  \
         push_role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend-ecr-push\n  \
         endpoint_url: {endpoint}\nprojects: [{}]\nauth: {{hs256_secret: 0123456789abcdef0123456789abcdef}}\n",
        projects.join(", ")
    );
    std::fs::write(dir.path().join("default.yaml"), text).unwrap();
    dir
}

/// One measurement: wall time, requests the proxy saw, requests it
/// throttled (both counted at the proxy, so every tool is counted alike).
#[derive(Default, Clone, Copy)]
struct Sample {
    took: Duration,
    requests: u64,
    throttled: u64,
}

fn measure(proxy: &ThrottlingProxy, f: impl FnOnce()) -> Sample {
    let (requests, throttled) = (proxy.requests(), proxy.throttled());
    let started = Instant::now();
    f();
    Sample {
        took: started.elapsed(),
        requests: proxy.requests() - requests,
        throttled: proxy.throttled() - throttled,
    }
}

/// Runs the release binary; returns its standard output. `expect` is the
/// exit code it must give (`plan --detailed-exitcode`: 0 none, 2 changes).
fn run(dir: &tempfile::TempDir, args: &[&str], expect: i32) -> String {
    let out = support::rise_registry_as_admin(dir.path())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(expect),
        "{args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ecr_via(url: &str) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::Config::builder()
            .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
            .region(aws_sdk_ecr::config::Region::new(support::REGION))
            .endpoint_url(url)
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                support::ADMIN_KEY,
                support::ADMIN_KEY,
                None,
                None,
                "bench",
            ))
            // As plan/apply: throttling slows a tool down, never fails it.
            .retry_config(
                aws_sdk_ecr::config::retry::RetryConfig::standard()
                    .with_max_attempts(10)
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .build(),
    )
}

const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"description":"keep the newest 100 images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}"#;

fn managed_tag() -> Tag {
    Tag::builder()
        .key("rise:managed")
        .value("true")
        .build()
        .unwrap()
}

/// Reads one repository as both baselines do: described by name, then its
/// tags, then its lifecycle policy; creates it (with its lifecycle policy)
/// when missing and `create` is set. Returns whether it existed.
async fn read_one(ecr: &aws_sdk_ecr::Client, i: usize, create: bool) -> bool {
    let name = format!("rise/p{i:05}");
    let found = ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .is_ok();
    if found {
        let arn = format!("arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{name}");
        ecr.list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        let _ = ecr
            .get_lifecycle_policy()
            .repository_name(&name)
            .send()
            .await;
    } else if create {
        ecr.create_repository()
            .repository_name(&name)
            .tags(managed_tag())
            .send()
            .await
            .unwrap();
        ecr.put_lifecycle_policy()
            .repository_name(&name)
            .lifecycle_policy_text(LIFECYCLE)
            .send()
            .await
            .unwrap();
    }
    found
}

/// The naive tool: every project in turn, one request at a time.
async fn naive(ecr: &aws_sdk_ecr::Client, n: usize, create: bool) {
    for i in 0..n {
        read_one(ecr, i, create).await;
    }
}

/// The Terraform-like tool: 10 repositories at a time. A plan refreshes
/// each (describe, tags, lifecycle); an apply on an empty account creates
/// each and its lifecycle policy, then reads both back, as Terraform's
/// AWS provider does after a create.
async fn terraform_like(ecr: &aws_sdk_ecr::Client, n: usize, create: bool) {
    let permits = Arc::new(Semaphore::new(10));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (ecr, permits) = (ecr.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            let existed = read_one(&ecr, i, create).await;
            if !existed && create {
                read_one(&ecr, i, false).await;
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
}

/// Changes 1% of the repositories behind the tools' backs (directly on
/// the emulator): every other one gets another lifecycle policy, the rest
/// another `rise:project` tag. Returns their names.
async fn drift(emulator: &Emulator, n: usize) -> Vec<String> {
    let ecr = ecr_via(&emulator.endpoint_url());
    let step = 100;
    let mut names = Vec::new();
    for (k, i) in (0..n).step_by(step).enumerate() {
        let name = format!("rise/p{i:05}");
        if k % 2 == 0 {
            ecr.put_lifecycle_policy()
                .repository_name(&name)
                .lifecycle_policy_text(LIFECYCLE.replace("100}", "7}"))
                .send()
                .await
                .unwrap();
        } else {
            ecr.tag_resource()
                .resource_arn(format!(
                    "arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{name}"
                ))
                .tags(
                    Tag::builder()
                        .key("rise:project")
                        .value("someone-else")
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
        names.push(name);
    }
    names
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|s| s.took);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

const CASES: [&str; 3] = [
    "plan (no changes)",
    "apply (empty account)",
    "plan (1% drifted)",
];
const TOOLS: [&str; 3] = [
    "rise-registry",
    "naive sequential",
    "Terraform-like (10 at a time)",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return;
    }
    let runs: usize = env_or("BENCH_RUNS", "3").parse().unwrap();
    let baseline_runs: usize = env_or("BENCH_BASELINE_RUNS", &runs.to_string())
        .parse()
        .unwrap();
    let sizes: Vec<usize> = env_or("BENCH_PROJECTS", "100,1000")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let latency = Latency {
        delay: Duration::from_millis(env_or("BENCH_DELAY_MS", "30").parse().unwrap()),
        rate: std::env::var("BENCH_RATE").ok().map(|r| r.parse().unwrap()),
        ..Latency::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for &n in &sizes {
        // samples[case][tool]
        let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); 3]; 3];
        for round in 1..=runs {
            eprintln!("{n} projects, round {round}/{runs}");
            let emulator = Emulator::start();
            let proxy = ThrottlingProxy::aws_like(emulator.addr, latency.clone());
            let dir = config(&proxy.url(), n);
            samples[1][0].push(measure(&proxy, || {
                run(&dir, &["apply", "--auto-approve"], 0);
            }));
            samples[0][0].push(measure(&proxy, || {
                run(&dir, &["plan", "--detailed-exitcode"], 0);
            }));
            let baselines = round <= baseline_runs;
            let ecr = ecr_via(&proxy.url());
            if baselines {
                samples[0][1].push(measure(&proxy, || rt.block_on(naive(&ecr, n, false))));
                samples[0][2].push(measure(&proxy, || {
                    rt.block_on(terraform_like(&ecr, n, false))
                }));
            }
            let drifted = rt.block_on(drift(&emulator, n));
            samples[2][0].push(measure(&proxy, || {
                // --verbose: every repository named, none folded into a group.
                let out = run(&dir, &["plan", "--verbose", "--detailed-exitcode"], 2);
                for name in &drifted {
                    assert!(out.contains(name.as_str()), "{name} drifted:\n{out}");
                }
            }));
            if baselines {
                // The baselines read the same requests whether or not
                // anything drifted; measured again all the same.
                samples[2][1].push(measure(&proxy, || rt.block_on(naive(&ecr, n, false))));
                samples[2][2].push(measure(&proxy, || {
                    rt.block_on(terraform_like(&ecr, n, false))
                }));
                for tool in [1, 2] {
                    let emulator = Emulator::start();
                    let proxy = ThrottlingProxy::aws_like(emulator.addr, latency.clone());
                    let ecr = ecr_via(&proxy.url());
                    samples[1][tool].push(measure(&proxy, || {
                        rt.block_on(async {
                            if tool == 1 {
                                naive(&ecr, n, true).await;
                            } else {
                                terraform_like(&ecr, n, true).await;
                            }
                        })
                    }));
                }
            }
        }
        for (case, by_tool) in CASES.iter().zip(samples) {
            rows.push((
                n,
                *case,
                by_tool.into_iter().map(median).collect::<Vec<_>>(),
            ));
        }
    }
    eprintln!(
        "plan/apply: medians of {runs} rounds ({baseline_runs} for the baselines) through a proxy adding {} ms per request{}",
        latency.delay.as_millis(),
        latency
            .rate
            .map(|r| format!(", throttling above {r} requests/s"))
            .unwrap_or_default()
    );
    println!("| measurement | rise-registry | baseline, same run | ratio |");
    println!("|---|---|---|---|");
    for (n, case, s) in rows {
        if s[1].took.is_zero() && s[2].took.is_zero() {
            println!(
                "| {case}, {n} projects, {} ms/request{} | {:.2} s, {:.2} requests/project, {} throttled | not run | |",
                latency.delay.as_millis(),
                latency
                    .rate
                    .map(|r| format!(", over {r} requests/s throttled"))
                    .unwrap_or_default(),
                s[0].took.as_secs_f64(),
                s[0].requests as f64 / n as f64,
                s[0].throttled
            );
            continue;
        }
        let cell = |s: &Sample| {
            format!(
                "{:.2} s, {:.2} requests/project, {} throttled",
                s.took.as_secs_f64(),
                s.requests as f64 / n as f64,
                s.throttled
            )
        };
        for tool in [1, 2] {
            if s[tool].took.is_zero() {
                continue; // baselines not run (BENCH_BASELINE_RUNS=0)
            }
            println!(
                "| {case}, {n} projects, {} ms/request | {} | {}: {} | {:.1}× faster |",
                latency.delay.as_millis(),
                cell(&s[0]),
                TOOLS[tool],
                cell(&s[tool]),
                s[tool].took.as_secs_f64() / s[0].took.as_secs_f64()
            );
        }
    }
}
