//! The Docker engine for the container tests: Debian's `dockerd`, started
//! for one test on a socket, data root and exec root of its own (so it
//! never meets another engine on the machine), with the storage and network
//! settings a machine without overlay mounts or iptables allows: `vfs`,
//! no bridge (containers use `--network host`). It is stopped, with its
//! containers, when dropped.
//!
//! `dockerd` needs root. Without it, or without the engine installed, the
//! test fails with the command that sets it up: never skipped silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run `scripts/install-test-deps` as root (scripts/test does it for you): it installs Debian's docker.io and debootstrap and makes the runtime base image";

pub struct Docker {
    daemon: Option<Child>,
    dir: tempfile::TempDir,
    client: PathBuf,
}

/// A path from `var`, or `default`, which must exist.
fn required(var: &str, default: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{what} is missing at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// The root file system of the runtime base image (scripts/make-base-image).
pub fn base_image_tar() -> PathBuf {
    let path = std::env::var_os("RISE_TEST_BASE_IMAGE_TAR").map(PathBuf::from);
    match path {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "RISE_TEST_BASE_IMAGE_TAR names no file ({path:?}): {INSTALL_HINT}, and pass on the variable it prints"
        ),
    }
}

impl Docker {
    /// Starts a private engine and waits until it answers.
    pub fn start() -> Self {
        let uid = Command::new("id").arg("-u").output().expect("running id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the container tests start dockerd, which needs root; run them as root ({INSTALL_HINT})"
        );
        let dockerd = required(
            "RISE_TEST_DOCKERD",
            "/usr/sbin/dockerd",
            "dockerd (docker.io)",
        );
        let client = required("RISE_TEST_DOCKER", "/usr/bin/docker", "docker (docker.io)");
        // Short paths: containerd's socket lives under the exec root, and a
        // Unix socket path has at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("rd")
            .tempdir_in("/tmp")
            .unwrap();
        let config = dir.path().join("daemon.json");
        std::fs::write(&config, "{}").unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let daemon = Command::new(dockerd)
            .args(["--config-file", &p("daemon.json")])
            .args(["--host", &format!("unix://{}", p("docker.sock"))])
            .args(["--data-root", &p("data"), "--exec-root", &p("exec")])
            .args(["--pidfile", &p("docker.pid")])
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip-masq=false",
            ])
            .args(["--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut docker = Self {
            daemon: Some(daemon),
            dir,
            client,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = docker.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("dockerd exited with {status}:\n{}", docker.daemon_log());
            }
            if docker
                .cmd()
                .arg("version")
                .output()
                .unwrap()
                .status
                .success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within a minute:\n{}",
                docker.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        docker
    }

    /// The engine's address, as `DOCKER_HOST` takes it: for a `docker`
    /// client that a program under test runs.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// The `docker` client binary.
    pub fn client(&self) -> &Path {
        &self.client
    }

    /// The `docker` client, talking to this engine, with BuildKit.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.client);
        cmd.arg("--host")
            .arg(self.host())
            .env("DOCKER_BUILDKIT", "1")
            // No client configuration (credential helpers, contexts) of the
            // machine's user.
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `docker ARGS`, which must succeed; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "docker {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running docker")
    }

    /// Imports a root file system tar as image `tag`.
    pub fn import(&self, tar: &Path, tag: &str) {
        self.run(&["import", tar.to_str().unwrap(), tag]);
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // Containers first, so no shim outlives the engine.
        if let Ok(out) = self.cmd().args(["ps", "-aq"]).output() {
            let ids = String::from_utf8_lossy(&out.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self.cmd().args(["rm", "-f"]).args(&ids).output();
            }
        }
        if let Some(mut daemon) = self.daemon.take() {
            let pid = daemon.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // dockerd leaves its network namespace bind-mounted under the exec
        // root; unmount what is left so the folder can be removed.
        let root = self.dir.path().to_str().unwrap_or_default().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").args(["--lazy", m]).status();
        }
    }
}
