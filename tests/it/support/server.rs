//! `rise-registry serve` as a child process on a free loopback port, with
//! its own config dir, environment, and captured audit (stdout) and log
//! (stderr) streams: for what only the real process shows (signals, TLS
//! from config, memory, hostile clients, the soak). Everything else runs
//! serve in the test process ([`super::in_process`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::free_port;

pub const BIN: &str = env!("CARGO_BIN_EXE_rise-registry");

pub struct Serve {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Serve {
    /// Writes `config` as `default.yaml` and starts serve with `env`.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), config).unwrap();
        let config_dir = dir.path().to_path_buf();
        Self::spawn(dir, &config_dir, "default", env)
    }

    /// Starts serve on the config directory `config_dir` (which the test
    /// may change while serve runs) in `run_mode`.
    pub fn start_in(config_dir: &std::path::Path, run_mode: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(tempfile::tempdir().unwrap(), config_dir, run_mode, env)
    }

    /// `dir` receives the audit and log files.
    fn spawn(
        dir: tempfile::TempDir,
        config_dir: &std::path::Path,
        run_mode: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let stdout = std::fs::File::create(dir.path().join("audit.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--config-dir",
            config_dir.to_str().unwrap(),
            "--run-mode",
            run_mode,
        ])
        .args(["serve", "--listen", &addr.to_string()])
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting rise-registry serve");
        let mut serve = Self {
            child: Some(child),
            addr,
            dir,
        };
        serve.wait_listening(Duration::from_secs(20));
        serve
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "serve exited with {status} during start-up:\n{}",
                    self.logs()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not listen in time:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to serve.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One value from `/metrics`: `series` is the metric name with its
    /// labels, as printed (`rise_registry_connections_open`).
    /// The audit lines written so far, as JSON.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = super::http::Conn::new(self.addr).get("/metrics", None);
        body.lines()
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == series).then(|| value.parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
    }

    /// A memory figure of the process from /proc (`VmRSS:`, `VmHWM:`), KiB.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "serve did not exit within {within:?} of SIGTERM:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A JWKS endpoint on loopback whose document the test can replace.
pub struct JwksServer {
    pub url: String,
    pub document: Arc<Mutex<String>>,
    pub fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub fn start(document: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (document.clone(), fetches.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let body = doc.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            url,
            document,
            fetches,
        }
    }

    pub fn set(&self, document: String) {
        *self.document.lock().unwrap() = document;
    }
}
