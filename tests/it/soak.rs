//! A bounded soak with faults: serve under steady load from several callers
//! (HS256 and RS256 tokens) while the AWS emulator is killed and restarted
//! and the JWKS keys rotate.
//!
//! Phases (each `RISE_SOAK_PHASE_SECONDS`, default 3; the recovery phase is
//! three of them): normal → AWS down (JWKS gains a new key and RS256
//! callers switch to it) → AWS back (the old key leaves the JWKS).
//! Throughout: no status but 200, and 503 only while AWS is down or a
//! project's 5 s back-off after a failure runs; no panic; open connections
//! and resident memory flat. After recovery every project, including those
//! never served before, gets correct credentials.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Emulator;
use support::http::Conn;
use support::jwt::{TestKey, claims, hs256, jwks};
use support::server::{JwksServer, Serve};

const SECRET: &str = "soak-test-secret-soak-test-secret-0123456";
const PROJECTS: usize = 20;
/// After AWS returns, a project that failed during the outage may still be
/// in its 5 s back-off; one more second of slack for scheduling.
const BACKOFF_SLACK: Duration = Duration::from_secs(6);

fn phase() -> Duration {
    let secs = std::env::var("RISE_SOAK_PHASE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

/// One observed answer: when (since start), which project, the status.
type Sample = (Duration, usize, u16);

#[tokio::test(flavor = "multi_thread")]
async fn serve_holds_through_an_aws_outage_and_a_key_rotation() {
    let data = tempfile::tempdir().unwrap();
    let mut emulator = Emulator::start_persistent(data.path());
    support::provision(&emulator).await;
    let old_key = TestKey::rs256("old");
    let new_key = TestKey::rs256("new");
    let jwks_server = JwksServer::start(jwks(&[&old_key]));
    let projects: Vec<String> = (0..PROJECTS)
        .map(|i| format!("  - {{name: p{i:02}, access: [\"group:team\"]}}"))
        .collect();
    let config = format!(
        "{}projects:\n{}\n\
         auth: {{hs256_secret: {SECRET}, jwks_url: \"{}\", issuer: soak, audience: rise, jwks_min_refresh_seconds: 1}}\n\
         server:\n  rate_limit: {{requests_per_minute: 1000000, burst: 1000000}}\n",
        support::ecr_yaml(Some(&emulator.endpoint_url())),
        projects.join("\n"),
        jwks_server.url,
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let serve = Serve::start(&config, &env);
    let phase = phase();
    let caller = |sub: &str| {
        let mut c = claims(sub, None, &["team"]);
        c["exp"] = json!(support::jwt::now() + 3600);
        c["iss"] = json!("soak");
        c["aud"] = json!("rise");
        c
    };

    // Which projects the clients may ask for: the first five at first, ten
    // during the outage (five of them never served: 503), all twenty after.
    let reach = Arc::new(AtomicUsize::new(5));
    let use_new_key = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..4 {
        let (reach, use_new_key, stop, samples) = (
            reach.clone(),
            use_new_key.clone(),
            stop.clone(),
            samples.clone(),
        );
        let hs = hs256(SECRET, &caller(&format!("hs-{i}")));
        let rs_old = old_key.sign(&caller(&format!("rs-{i}")));
        let rs_new = new_key.sign(&caller(&format!("rs-{i}")));
        let addr = serve.addr;
        clients.push(std::thread::spawn(move || {
            let mut conn = Conn::new(addr);
            let mut n = 0usize;
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let project = n % reach.load(Ordering::Relaxed);
                let token = match (i % 2, use_new_key.load(Ordering::Relaxed)) {
                    (0, _) => &hs,
                    (_, false) => &rs_old,
                    (_, true) => &rs_new,
                };
                let path = format!("/registry/credentials?project=p{project:02}");
                let (status, _) = conn.get(&path, Some(token));
                local.push((started.elapsed(), project, status));
                // Steady, not flat out: the soak is about time, not peak rate.
                std::thread::sleep(Duration::from_millis(2));
            }
            samples.lock().unwrap().extend(local);
        }));
    }

    let mut memory = Vec::new();
    let mut connections = Vec::new();
    let sample = |memory: &mut Vec<u64>, connections: &mut Vec<f64>| {
        memory.push(serve.memory_kib("VmRSS:"));
        connections.push(serve.metric("rise_registry_connections_open"));
    };
    let wait = |until: Duration, memory: &mut Vec<u64>, connections: &mut Vec<f64>| {
        while started.elapsed() < until {
            std::thread::sleep(Duration::from_millis(250));
            sample(memory, connections);
        }
    };

    wait(phase, &mut memory, &mut connections);
    let outage_at = started.elapsed();
    emulator.stop();
    reach.store(10, Ordering::Relaxed);
    wait(outage_at + phase / 2, &mut memory, &mut connections);
    jwks_server.set(jwks(&[&old_key, &new_key]));
    use_new_key.store(true, Ordering::Relaxed);
    wait(outage_at + phase, &mut memory, &mut connections);
    emulator.restart();
    let back_at = started.elapsed();
    reach.store(PROJECTS, Ordering::Relaxed);
    jwks_server.set(jwks(&[&new_key]));
    wait(back_at + phase * 3, &mut memory, &mut connections);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count();
    let ok = count(&|s| s.2 == 200);
    let unavailable = count(&|s| s.2 == 503);
    eprintln!(
        "soak: {} requests in {:?}: {ok} × 200, {unavailable} × 503 (AWS down {:?}..{:?}); \
         RSS {} → {} KiB (max {}); open connections max {}",
        samples.len(),
        started.elapsed(),
        outage_at,
        back_at,
        memory[0],
        memory.last().unwrap(),
        memory.iter().max().unwrap(),
        connections.iter().cloned().fold(0.0, f64::max),
    );
    let others: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.2 != 200 && s.2 != 503)
        .take(5)
        .collect();
    assert!(
        others.is_empty(),
        "statuses besides 200 and 503: {others:?}"
    );
    let misplaced: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.2 == 503 && !(s.0 >= outage_at && s.0 < back_at + BACKOFF_SLACK))
        .take(5)
        .collect();
    assert!(
        misplaced.is_empty(),
        "503 outside the outage: {misplaced:?}"
    );
    assert!(
        samples.iter().any(|s| s.2 == 503),
        "the outage was felt by projects never served before"
    );
    assert!(
        !samples.iter().any(|s| s.2 != 200 && s.1 < 5),
        "projects cached before the outage were served throughout"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.0 > back_at + BACKOFF_SLACK && s.1 >= 10 && s.2 == 200),
        "projects first asked for after recovery were served"
    );

    // Flat: connections never beyond the clients' four plus the sampler;
    // memory at the end within 25% (or 4 MiB) of the first reading.
    assert!(connections.iter().all(|c| *c <= 6.0), "{connections:?}");
    let (first, last) = (memory[0], *memory.last().unwrap());
    assert!(
        last <= first + (first / 4).max(4096),
        "resident memory grew from {first} to {last} KiB: {memory:?}"
    );

    // Correct credentials after recovery, for every project.
    for i in 0..PROJECTS {
        let url = serve.url(&format!("/registry/credentials?project=p{i:02}"));
        let reply = support::http::get(&url, Some(&new_key.sign(&caller("final")))).await;
        assert_eq!(reply.status, 200, "p{i:02}: {}", reply.body);
        let body: Value = reply.json();
        assert_eq!(body["credentials"]["username"], "AWS");
        assert!(!body["credentials"]["password"].as_str().unwrap().is_empty());
        assert_eq!(body["image"], format!("{}/rise/p{i:02}", emulator.addr));
        let left = body["credentials"]["expires_in"].as_u64().unwrap();
        assert!(left > 900, "p{i:02}: {left}");
    }
    let logs = serve.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}
