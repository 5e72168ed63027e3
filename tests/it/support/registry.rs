//! Debian's docker-registry (CNCF distribution 2.8) on a loopback port,
//! configured for token authentication with serve as its realm.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn docker_registry_bin() -> PathBuf {
    super::tool(
        "RISE_TEST_DOCKER_REGISTRY",
        || "/usr/bin/docker-registry".into(),
        "docker-registry",
    )
}

/// Where [`DockerRegistry::start_for`] keeps the token root bundle.
const ROOT_BUNDLE: &str = "rise-token-root.crt";

pub struct DockerRegistry {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts the registry on `addr` with `auth_block` (the `auth:` section
    /// of its config.yml, as `rise-registry oci-token registry-config`
    /// prints it).
    pub fn start(addr: SocketAddr, auth_block: &str) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), addr, auth_block)
    }

    /// Starts the registry on `addr` for the `oci-token` configuration in
    /// `config_dir` (run mode `default`), with `realm` as its token realm:
    /// the `auth:` block and root bundle are what `rise-registry oci-token
    /// registry-config` writes for them, as an operator sets one up.
    pub fn start_for(addr: SocketAddr, config_dir: &Path, realm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join(ROOT_BUNDLE);
        let out = Command::new(super::server::BIN)
            .arg("--config-dir")
            .arg(config_dir)
            .args(["--run-mode", "default", "oci-token", "registry-config"])
            .args(["--realm", realm, "--rootcertbundle"])
            .arg(&bundle)
            .arg("--bundle-out")
            .arg(&bundle)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "registry-config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::start_in(dir, addr, &String::from_utf8(out.stdout).unwrap())
    }

    /// The config.yml it runs with.
    pub fn config_yml(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("config.yml")).unwrap()
    }

    /// The root bundle [`Self::start_for`] had `registry-config` write.
    pub fn root_bundle(&self) -> std::path::PathBuf {
        self.dir.path().join(ROOT_BUNDLE)
    }

    fn start_in(dir: tempfile::TempDir, addr: SocketAddr, auth_block: &str) -> Self {
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n\
             http:\n  addr: {addr}\n\
             {auth_block}",
            data = dir.path().join("data").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut registry = Self {
            child: None,
            addr,
            dir,
        };
        registry.spawn();
        registry
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .unwrap();
        let child = Command::new(docker_registry_bin())
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .env_clear()
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("docker-registry exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen in time:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops and starts the process with the same config and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its log: the only place it says why it refused a token.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
