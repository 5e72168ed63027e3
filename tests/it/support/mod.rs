//! Test support: real external components started on loopback ports.
//!
//! [`Emulator`] runs fakecloud (ECR, IAM and STS on one port) for one test
//! and stops it when dropped. A missing component fails the test with the
//! command that installs it; nothing is skipped silently.

#![allow(dead_code)] // the benchmarks include this module too, and use a part of it

/// insta snapshots, kept in the top-level `snapshots/` folder (the path is
/// relative to the test file that asserts, in `tests/it/`).
#[allow(unused_macros)] // unused by the benchmarks, which include this module
macro_rules! snapshot {
    ($value:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($value);
        })
    };
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

pub mod docker;
pub mod http;
pub mod in_process;
pub mod jwt;
pub mod kube;
pub mod oci;
pub mod oidc;
pub mod postgres;
pub mod registry;
pub mod server;
pub mod throttle;
pub mod wrk;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin key pair fakecloud always accepts (it bypasses IAM checks).
pub const ADMIN_KEY: &str = "test";
pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";

const INSTALL_HINT: &str = "run `scripts/install-test-deps` (scripts/test does it for you)";

/// A tool's path from its `RISE_TEST_*` variable, or its default location.
fn tool(var: &str, default: impl FnOnce() -> PathBuf, name: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(default);
    assert!(
        path.is_file(),
        "{name} is not installed at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

pub fn fakecloud_bin() -> PathBuf {
    tool(
        "RISE_TEST_FAKECLOUD",
        || {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("rise-registry/fakecloud-0.51.0-debug/bin/fakecloud")
        },
        "fakecloud 0.51.0 (the AWS API emulator)",
    )
}

/// Loads configuration layers given as `(file label, text)`, lowest
/// precedence first, with `env` as the whole environment.
pub fn load_config(
    layers: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Result<rise_registry::config::Config, rise_registry::config::ConfigErrors> {
    let sources: Vec<rise_registry::config::Source> = layers
        .iter()
        .map(|(file, text)| rise_registry::config::Source {
            file: std::sync::Arc::from(*file),
            text: text.to_string(),
        })
        .collect();
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rise_registry::config::load_sources(
        &sources,
        &std::sync::Arc::from("config"),
        &move |k: &str| env.get(k).cloned(),
    )
}

/// `rise-registry --config-dir DIR` with a clean environment holding only
/// the emulator's admin key: how the tests and benchmarks run plan/apply.
pub fn rise_registry_as_admin(config_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rise-registry"));
    // The config dir holds default.yaml alone: run on it, no run mode file.
    cmd.args(["--config-dir", config_dir.to_str().expect("a UTF-8 path")])
        .args(["--run-mode", "default"])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ADMIN_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1");
    cmd
}

/// A port that was free a moment ago. The emulator binds it right after;
/// a rare clash shows up as a start-up failure, not a wrong result.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One running fakecloud, in strict IAM mode so identity and session
/// policies are really evaluated.
pub struct Emulator {
    child: Child,
    pub addr: SocketAddr,
    /// Where state is kept across restarts, when it is.
    data: Option<PathBuf>,
}

impl Emulator {
    /// An emulator whose state lives in memory: a restart empties it.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// An emulator that keeps its state in `data`, so a restart (or a kill)
    /// finds it again, as AWS would after an outage.
    pub fn start_persistent(data: &std::path::Path) -> Self {
        Self::start_with(Some(data.to_path_buf()))
    }

    fn start_with(data: Option<PathBuf>) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut emulator = Self {
            child: Self::spawn(addr, data.as_deref()),
            addr,
            data,
        };
        emulator.wait_ready(Duration::from_secs(30));
        emulator
    }

    /// Starts the emulator again on the same address, as if AWS came back
    /// after an outage: empty, or with its kept state when persistent.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.addr, self.data.as_deref());
        self.wait_ready(Duration::from_secs(30));
    }

    fn spawn(addr: SocketAddr, data: Option<&std::path::Path>) -> Child {
        let bin = fakecloud_bin();
        let mut cmd = Command::new(&bin);
        if let Some(dir) = data {
            cmd.args(["--storage-mode", "persistent", "--data-path"])
                .arg(dir);
        }
        cmd.args([
            "--addr",
            &addr.to_string(),
            "--iam",
            "strict",
            "--log-level",
            "warn",
        ])
        .args(["--region", REGION, "--account-id", ACCOUNT_ID])
        .stdin(Stdio::null())
        // It prints start-up warnings (no container runtime, test keys)
        // whatever the log level; they would only bury test output.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL_HINT}", bin.display()))
    }

    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `registry:` block of an `ecr` config against this emulator,
    /// with the roles [`provision`] makes and the prefix `rise/`; its keys
    /// end the block, so a caller may add more registry keys after it.
    pub fn registry_block(&self) -> String {
        format!("\n{}", ecr_yaml(Some(&self.endpoint_url())))
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the emulator") {
                panic!("fakecloud exited during start-up with {status}");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fakecloud did not listen on {} within {timeout:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SDK settings for the admin identity.
    pub async fn admin_config(&self) -> aws_config::SdkConfig {
        self.config_for(aws_sdk_sts::config::Credentials::new(
            ADMIN_KEY,
            ADMIN_KEY,
            None,
            None,
            "test-admin",
        ))
        .await
    }

    /// SDK settings for any credentials, pointed at this emulator.
    pub async fn config_for(
        &self,
        credentials: aws_sdk_sts::config::Credentials,
    ) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(credentials)
            .load()
            .await
    }
}

impl Emulator {
    /// Kills the emulator now (an AWS outage, as far as clients can tell).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The push role and one repository (`rise/my-app`), created as an
/// administrator would, for tests and benchmarks of the ECR provider.
/// The `registry:` block of an ECR config for the test account
/// ([`ACCOUNT_ID`], us-east-1, the default `rise/` prefix, roles named as
/// the operator guide names them), with `endpoint_url` when given. More
/// `registry` keys follow as lines indented by two spaces, then the other
/// top-level keys. The one place the tests write it.
pub fn ecr_yaml(endpoint: Option<&str>) -> String {
    let endpoint = endpoint
        .map(|url| format!("  endpoint_url: {url}\n"))
        .unwrap_or_default();
    format!(
        "registry:\n  type: ecr\n  region: us-east-1\n  account_id: \"{ACCOUNT_ID}\"\n  \
         role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend\n  \
         push_role_arn: arn:aws:iam::{ACCOUNT_ID}:role/rise-backend-ecr-push\n{endpoint}"
    )
}

pub async fn provision(emulator: &Emulator) {
    let admin = emulator.admin_config().await;
    let iam = aws_sdk_iam::Client::new(&admin);
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_ID}:root")}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name("rise-backend-ecr-push")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("CreateRole");
    let push = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:*"], "Resource": format!("arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/rise/*")},
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
    iam.put_role_policy()
        .role_name("rise-backend-ecr-push")
        .policy_name("push")
        .policy_document(push.to_string())
        .send()
        .await
        .expect("PutRolePolicy");
    aws_sdk_ecr::Client::new(&admin)
        .create_repository()
        .repository_name("rise/my-app")
        .tags(
            aws_sdk_ecr::types::Tag::builder()
                .key("rise:managed")
                .value("true")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateRepository");
}

/// A checkout's layout in a temporary directory: a copy of the shipped
/// `config/` and, beside it, `pki/` as `oci-token dev-ca` writes it (what
/// `mise run backend:deps:oci-token` makes, and the shipped `oci-token`
/// run mode names as `../pki`).
pub fn checkout_with_pki() -> tempfile::TempDir {
    let checkout = tempfile::tempdir().unwrap();
    let config = checkout.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for file in std::fs::read_dir(shipped).unwrap() {
        let file = file.unwrap().path();
        if file.is_file() {
            std::fs::copy(&file, config.join(file.file_name().unwrap())).unwrap();
        }
    }
    dev_ca(&checkout.path().join("pki"));
    checkout
}

/// `rise-registry oci-token dev-ca --out dir`, as a user runs it: a
/// development CA, the token signing key and its chain in `dir`.
pub fn dev_ca(dir: &std::path::Path) {
    let out = Command::new(server::BIN)
        .args(["oci-token", "dev-ca", "--out"])
        .arg(dir)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dev-ca: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
