//! plan and apply at 100 and 1000 projects against the AWS emulator: wall
//! time and AWS requests, beside a naive sequential baseline (one
//! repository at a time, each read in turn) measured in the same run.
//! Run it with `scripts/bench`; docs/performance.md explains the table.
//!
//! Settings (environment): `BENCH_RUNS` (default 3, medians reported),
//! `BENCH_PROJECTS` (default `100,1000`).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use aws_sdk_ecr::types::Tag;
use support::{ACCOUNT_ID, Emulator};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn config(emulator: &Emulator, n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let projects: Vec<String> = (0..n).map(|i| format!("{{name: p{i:04}}}")).collect();
    let text = format!(
        "registry:\n  type: ecr\n  region: us-east-1\n  account_id: \"{ACCOUNT_ID}\"\n  \
         role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend\n  \
         push_role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend-ecr-push\n  \
         endpoint_url: {}\nprojects: [{}]\nauth: {{hs256_secret: 0123456789abcdef0123456789abcdef}}\n",
        emulator.endpoint_url(),
        projects.join(", ")
    );
    std::fs::write(dir.path().join("default.yaml"), text).unwrap();
    dir
}

/// Runs the release binary with `-v`; returns wall time and (reads, writes).
fn run(dir: &tempfile::TempDir, args: &[&str]) -> (Duration, usize, usize) {
    let started = Instant::now();
    let out = support::rise_registry_as_admin(dir.path())
        .arg("-v")
        .args(args)
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{log}");
    let field = |name: &str| -> usize {
        log.rsplit(&format!("{name}="))
            .next()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (took, field("reads"), field("writes"))
}

/// The naive tool: every project in turn, each repository read by name
/// (and created when missing), tags and lifecycle read one after another.
async fn naive(emulator: &Emulator, n: usize, create: bool) -> (Duration, usize) {
    let ecr = aws_sdk_ecr::Client::new(&emulator.admin_config().await);
    let started = Instant::now();
    let mut calls = 0;
    for i in 0..n {
        let name = format!("rise/p{i:04}");
        calls += 1;
        let found = ecr
            .describe_repositories()
            .repository_names(&name)
            .send()
            .await
            .is_ok();
        if !found && create {
            calls += 2;
            ecr.create_repository()
                .repository_name(&name)
                .tags(
                    Tag::builder()
                        .key("rise:managed")
                        .value("true")
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            ecr.put_lifecycle_policy()
                .repository_name(&name)
                .lifecycle_policy_text(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}"#)
                .send()
                .await
                .unwrap();
        }
        if found {
            calls += 2;
            let arn = format!("arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{name}");
            let _ = ecr.list_tags_for_resource().resource_arn(arn).send().await;
            let _ = ecr
                .get_lifecycle_policy()
                .repository_name(&name)
                .send()
                .await;
        }
    }
    (started.elapsed(), calls)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return;
    }
    let runs: usize = env_or("BENCH_RUNS", "3").parse().unwrap();
    let sizes: Vec<usize> = env_or("BENCH_PROJECTS", "100,1000")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for &n in &sizes {
        let (mut apply_t, mut plan_t, mut naive_apply_t, mut naive_plan_t) =
            (vec![], vec![], vec![], vec![]);
        let (mut apply_calls, mut plan_calls, mut naive_apply_calls, mut naive_plan_calls) =
            ((0, 0), (0, 0), 0, 0);
        for round in 1..=runs {
            eprintln!("{n} projects, round {round}/{runs}");
            let emulator = Emulator::start();
            let dir = config(&emulator, n);
            let (t, r, w) = run(&dir, &["apply", "--auto-approve"]);
            apply_t.push(t);
            apply_calls = (r, w);
            let (t, r, w) = run(&dir, &["plan", "--detailed-exitcode"]);
            assert_eq!(w, 0, "a plan never writes");
            plan_t.push(t);
            plan_calls = (r, w);
            drop(emulator);

            let emulator = Emulator::start();
            let (t, c) = rt.block_on(naive(&emulator, n, true));
            naive_apply_t.push(t);
            naive_apply_calls = c;
            let (t, c) = rt.block_on(naive(&emulator, n, false));
            naive_plan_t.push(t);
            naive_plan_calls = c;
        }
        rows.push((
            n,
            "apply (empty account)",
            median(apply_t),
            apply_calls.0 + apply_calls.1,
            median(naive_apply_t),
            naive_apply_calls,
        ));
        rows.push((
            n,
            "plan (no changes)",
            median(plan_t),
            plan_calls.0 + plan_calls.1,
            median(naive_plan_t),
            naive_plan_calls,
        ));
    }
    eprintln!(
        "plan/apply: medians of {runs} rounds against the emulator; the naive baseline reads and writes one repository at a time"
    );
    println!("| measurement | rise-registry | baseline, same run | ratio |");
    println!("|---|---|---|---|");
    for (n, what, t, calls, nt, ncalls) in rows {
        println!(
            "| {what}, {n} projects | {:.2} s, {calls} AWS requests | naive sequential: {:.2} s, {ncalls} requests | {:.1}× faster |",
            t.as_secs_f64(),
            nt.as_secs_f64(),
            nt.as_secs_f64() / t.as_secs_f64()
        );
    }
}
