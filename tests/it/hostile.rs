//! Hostile clients against the real binary on loopback: slow headers, huge
//! headers, idle connections, pipelined garbage and a flood from one caller,
//! all at once. Meanwhile health checks must keep answering within a bound
//! and another caller must keep getting credentials. Bounded: the attack
//! runs a few seconds and every task stops by itself.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::http::Conn;
use support::jwt::{claims, hs256};
use support::server::Serve;

const SECRET: &str = "hostile-test-secret-hostile-test-secret-01";
/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(4);
/// A health check slower than this while under attack fails the test.
const HEALTH_BOUND: Duration = Duration::from_millis(500);

fn config() -> String {
    format!(
        r#"
registry: {{type: oci-client-auth, registry_url: "localhost:5000"}}
projects:
  - {{name: my-app, access: ["user:alice", "user:mallory"]}}
auth: {{hs256_secret: {SECRET}}}
server:
  header_read_timeout_seconds: 1
  rate_limit: {{requests_per_minute: 60, burst: 20}}
"#
    )
}

fn token(sub: &str) -> String {
    hs256(SECRET, &claims(sub, None, &[]))
}

/// One request on a fresh connection; the status code and how long it took.
fn one_request(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (u16, Duration) {
    let started = Instant::now();
    let (status, _) = Conn::new(addr).get(path, bearer);
    (status, started.elapsed())
}

#[test]
fn health_and_other_callers_survive_hostile_clients() {
    let serve = Serve::start(&config(), &[]);
    let addr = serve.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    let spawn = |attackers: &mut Vec<std::thread::JoinHandle<u64>>,
                 f: Box<dyn Fn() -> u64 + Send>| {
        attackers.push(std::thread::spawn(f));
    };

    // Slowloris: 30 connections dripping one header byte every 100 ms.
    for _ in 0..30 {
        let stop = stop.clone();
        spawn(
            &mut attackers,
            Box::new(move || {
                let mut cut = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\n");
                    loop {
                        std::thread::sleep(Duration::from_millis(100));
                        if stop.load(Ordering::Relaxed) {
                            return cut;
                        }
                        if s.write_all(b"X").is_err() {
                            cut += 1; // the server hung up: the timeout worked
                            break;
                        }
                    }
                }
                cut
            }),
        );
    }
    // Idle connections: 200 opened and left silent.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Huge headers, again and again.
    {
        let stop = stop.clone();
        spawn(
            &mut attackers,
            Box::new(move || {
                let mut refused = 0;
                let big = format!(
                    "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(64 * 1024)
                );
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let _ = s.write_all(big.as_bytes());
                    let mut r = Vec::new();
                    let _ = s.read_to_end(&mut r);
                    if r.starts_with(b"HTTP/1.1 431") || r.is_empty() {
                        refused += 1;
                    }
                }
                refused
            }),
        );
    }
    // Pipelined garbage: binary noise and malformed request lines, fast.
    {
        let stop = stop.clone();
        spawn(
            &mut attackers,
            Box::new(move || {
                let mut rejected = 0;
                let mut seed = 0x2545F491u32;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut junk = Vec::with_capacity(4096);
                    for _ in 0..20 {
                        junk.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                        junk.extend_from_slice(b"\x00\xff GARBAGE / HTTP/9.9\r\n\r\n");
                        for _ in 0..64 {
                            seed ^= seed << 13;
                            seed ^= seed >> 17;
                            seed ^= seed << 5;
                            junk.push(seed as u8);
                        }
                    }
                    let _ = s.write_all(&junk);
                    let mut r = Vec::new();
                    let _ = s.read_to_end(&mut r);
                    if String::from_utf8_lossy(&r).contains("HTTP/1.1 400") {
                        rejected += 1;
                    }
                }
                rejected
            }),
        );
    }
    // A flood from one caller on keep-alive connections.
    let flood_429 = Arc::new(AtomicU64::new(0));
    for _ in 0..2 {
        let (stop, count) = (stop.clone(), flood_429.clone());
        let mallory = token("mallory");
        spawn(
            &mut attackers,
            Box::new(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let req = format!(
                    "GET /registry/credentials?project=my-app HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {mallory}\r\n\r\n"
                );
                let mut buf = vec![0u8; 16 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(req.as_bytes()).is_err() {
                        s = TcpStream::connect(addr).unwrap();
                        continue;
                    }
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => {
                            if buf[..n].starts_with(b"HTTP/1.1 429") {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => s = TcpStream::connect(addr).unwrap(),
                    }
                }
                0
            }),
        );
    }

    // Under all that: health every 50 ms, alice every 200 ms (within her
    // own rate limit).
    let alice = token("alice");
    let started = Instant::now();
    let (mut health, mut creds) = (Vec::new(), Vec::new());
    let mut next_alice = Instant::now();
    while started.elapsed() < ATTACK {
        health.push(one_request(addr, "/healthz", None));
        if Instant::now() >= next_alice {
            creds.push(one_request(
                addr,
                "/registry/credentials?project=my-app",
                Some(&alice),
            ));
            next_alice += Duration::from_millis(200);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let results: Vec<u64> = attackers.into_iter().map(|t| t.join().unwrap()).collect();

    let slowest = health.iter().map(|(_, d)| *d).max().unwrap();
    let mut sorted: Vec<Duration> = health.iter().map(|(_, d)| *d).collect();
    sorted.sort();
    eprintln!(
        "under attack: {} health checks, median {:?}, slowest {slowest:?}; alice served {}/{}; \
         flood answered 429 {} times; slow-header connections cut {}; huge-header requests refused {}; \
         garbage connections answered 400 {}",
        health.len(),
        sorted[sorted.len() / 2],
        creds.iter().filter(|(s, _)| *s == 200).count(),
        creds.len(),
        flood_429.load(Ordering::Relaxed),
        results[..30].iter().sum::<u64>(),
        results[30],
        results[31],
    );
    assert!(
        health.iter().all(|(status, _)| *status == 200),
        "health checks failed: {health:?}"
    );
    assert!(
        slowest < HEALTH_BOUND,
        "slowest health check {slowest:?} (bound {HEALTH_BOUND:?})"
    );
    assert!(creds.len() >= 15, "{creds:?}");
    assert!(
        creds.iter().all(|(status, _)| *status == 200),
        "alice was not served: {creds:?}"
    );
    assert!(
        flood_429.load(Ordering::Relaxed) > 100,
        "the flood was rate limited"
    );
    let slowloris_cut: u64 = results[..30].iter().sum();
    assert!(
        slowloris_cut >= 30,
        "slow headers are cut after the timeout ({slowloris_cut})"
    );
    assert!(results[30] > 0, "huge headers refused");
    assert!(results[31] > 0, "garbage answered with 400");

    // The idle connections were closed by the server, not kept forever.
    std::thread::sleep(Duration::from_millis(1500));
    let closed = idle
        .into_iter()
        .filter(|s| {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            // End of stream, or an answer before it: either way the server
            // let go. Still open reads as a timeout error.
            s.read(&mut [0u8; 64]).is_ok()
        })
        .count();
    assert_eq!(
        closed, 200,
        "idle connections are closed after the header timeout"
    );
    // Nothing left open but the metrics request itself.
    let open = serve.metric("rise_registry_connections_open");
    assert!(open <= 2.0, "connections still open: {open}");
    let logs = serve.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A connection that pipelines `count` requests for `path` and never reads
/// an answer, with a 4 KiB receive buffer so the answers back up at once.
fn never_reading(addr: SocketAddr, path: &str, count: usize) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let burst = request.repeat(count);
    // The server stops reading once its answers cannot be written: the
    // rest of the burst times out here, which is the point.
    let _ = (&stream).write_all(burst.as_bytes());
    stream
}

/// How long until `GET /healthz` on a fresh connection to `addr` answers
/// 200, trying for at most `within`; `None` if it never does.
fn healthz_answers(addr: SocketAddr, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
                return Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Clients that pipeline requests and never read the answers used to hold
/// their connection slots for as long as they liked (hyper's header timer
/// runs only while it reads), so with every slot of a listener taken that
/// way its health checks timed out. A write that makes no progress for
/// `write_timeout_seconds` now closes the connection: the API listener
/// (8 slots) and the metrics listener the chart's probes use (64 slots)
/// both answer `/healthz` again within a few seconds of the attack. (The
/// request cap is set out of reach here, so the write deadline is what is
/// tested; the cap alone also ends these connections, once the kernel has
/// taken its answers.)
#[test]
fn clients_that_never_read_do_not_keep_their_connections() {
    let base = format!(
        r#"
registry: {{type: oci-client-auth, registry_url: "localhost:5000"}}
projects: []
auth: {{hs256_secret: {SECRET}}}
server:
  max_connections: 8
  write_timeout_seconds: 1
  max_requests_per_connection: 1000000
"#
    );
    let bound = Duration::from_secs(6);
    // The API listener, serving /metrics itself: 8 clients take every slot.
    let serve = Serve::start(&base, &[]);
    let held: Vec<TcpStream> = (0..8)
        .map(|_| never_reading(serve.addr, "/metrics", 20_000))
        .collect();
    let answered = healthz_answers(serve.addr, Duration::from_secs(15));
    assert!(
        answered.is_some_and(|t| t < bound),
        "the API listener answered /healthz after {answered:?} with 8 clients that never read"
    );
    drop(held);

    // The metrics listener: 64 such clients take every slot of its own.
    let ops = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let serve = Serve::start(&format!("{base}  metrics_listen: \"{ops}\"\n"), &[]);
    let held: Vec<TcpStream> = (0..64)
        .map(|_| never_reading(ops, "/metrics", 20_000))
        .collect();
    let answered = healthz_answers(ops, Duration::from_secs(15));
    assert!(
        answered.is_some_and(|t| t < bound),
        "the metrics listener answered /healthz after {answered:?} with 64 clients that never read"
    );
    drop(held);
    drop(serve);
}

/// A connection ends after `max_requests_per_connection` requests: the
/// last answer says `Connection: close`, pipelined requests past it are
/// not answered, and the server closes its side.
#[test]
fn a_connection_ends_after_its_request_cap() {
    let config = format!(
        "registry: {{type: oci-client-auth, registry_url: \"localhost:5000\"}}\nprojects: []\n\
         auth: {{hs256_secret: {SECRET}}}\nserver: {{max_requests_per_connection: 3}}\n"
    );
    let serve = Serve::start(&config, &[]);
    let mut s = TcpStream::connect(serve.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5))
        .unwrap();
    let mut answers = String::new();
    // Read to the end: the server must close, or the read times out.
    let read = s.read_to_string(&mut answers);
    assert!(read.is_ok(), "the connection was not closed: {read:?}");
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 3, "{answers}");
    let last = answers.rsplit("HTTP/1.1 200 OK").next().unwrap();
    assert!(
        last.to_ascii_lowercase().contains("connection: close"),
        "{answers}"
    );
}
