//! wrk, the HTTP load generator the benchmarks drive (`scripts/bench`
//! installs it), and the medians of its runs.

use std::process::Command;

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Whether wrk saw any answer outside 2xx.
    pub non_2xx: bool,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Parses wrk's `--latency` output.
pub fn parse_wrk(out: &str) -> Run {
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
    if let Some(line) = out.lines().find(|l| l.contains("Socket errors")) {
        eprintln!("warning: {}", line.trim());
    }
    Run {
        non_2xx: out.lines().any(|l| l.contains("Non-2xx")),
        rps: field("Requests/sec:").trim().parse().unwrap(),
        p50_ms: ms(&field("50%")),
        p99_ms: ms(&field("99%")),
    }
}

/// The answers a case expects: a run that gets others measures something
/// else (an error path, a rate limit) and aborts the benchmark.
#[derive(Clone, Copy, PartialEq)]
pub enum Expect {
    Success,
    Denied,
}

pub fn wrk(url: &str, token: Option<&str>, seconds: u64, connections: u64) -> Run {
    wrk_expecting(Expect::Success, url, token, seconds, connections)
}

pub fn wrk_expecting(
    expect: Expect,
    url: &str,
    token: Option<&str>,
    seconds: u64,
    connections: u64,
) -> Run {
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run = parse_wrk(&stdout);
    assert_eq!(
        run.non_2xx,
        expect == Expect::Denied,
        "{url}: unexpected answers for this case:\n{stdout}"
    );
    run
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn summarize(runs: &[Run]) -> Run {
    Run {
        non_2xx: runs.iter().any(|r| r.non_2xx),
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
    }
}
