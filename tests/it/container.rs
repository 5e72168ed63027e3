//! The container image: the top-level `Dockerfile`, built and run with the
//! real Docker engine ([`Docker`]). No image registry is reachable here, so
//! the runtime base image the Dockerfile names is made from Debian's
//! packages (scripts/make-base-image) and imported under that name; the
//! binary is this build's, given through the Dockerfile's `prebuilt` stage
//! (the `source` stage needs a Rust toolchain image, which cannot be made
//! here). Everything after `FROM` is the file users build.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::docker::{Docker, base_image_tar};
use support::http::Conn;
use support::jwt::{claims, hs256};
use support::server::BIN;

const SECRET: &str = "container-test-secret-container-test-secret";
const IMAGE: &str = "rise-registry:test";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default of `ARG NAME=…` in the Dockerfile.
pub(crate) fn dockerfile_arg(name: &str) -> String {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
        .unwrap_or_else(|| panic!("the Dockerfile has no `ARG {name}=`"))
        .trim()
        .to_string()
}

/// A build context as users would send it for `BINARY=prebuilt`: the
/// binary (without debug sections, which only make the copy slower) and
/// the example config the image carries.
fn build_context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    let bin = ctx.path().join("rise-registry");
    let stripped = Command::new("objcopy")
        .args(["--strip-debug", BIN, bin.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(BIN, &bin).unwrap();
    }
    copy_dir(&repo().join("config"), &ctx.path().join("config"));
    ctx
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Builds the image once per engine; the build time, for the record.
fn build_image(docker: &Docker) -> Duration {
    let runtime = dockerfile_arg("RUNTIME_IMAGE");
    docker.import(&base_image_tar(), &runtime);
    let ctx = build_context();
    let started = Instant::now();
    docker.run(&[
        "build",
        "--file",
        repo().join("Dockerfile").to_str().unwrap(),
        "--build-arg",
        "BINARY=prebuilt",
        "--build-arg",
        "PREBUILT_BINARY=rise-registry",
        "--tag",
        IMAGE,
        ctx.path().to_str().unwrap(),
    ]);
    started.elapsed()
}

/// A config directory as a pod mounts it: the base layer and a run-mode
/// layer, values from the environment, readable by the image's user.
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.yaml"),
        "registry:\n  type: oci-client-auth\n  registry_url: ${RISE_REGISTRY_URL:-localhost:5000}\n  namespace: rise-apps\nserver:\n  listen: ${RISE_LISTEN:-127.0.0.1:3000}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("production.yaml"),
        "projects:\n  - {name: my-app, access: [\"user:alice@example.com\"]}\nauth:\n  issuer: test-issuer\n  audience: rise\n  hs256_secret: ${RISE_JWT_SECRET}\nserver:\n  shutdown_grace_seconds: 10\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn inspect(docker: &Docker, what: &str, format: &str) -> Value {
    let out = docker.run(&[what, "inspect", "--format", format, IMAGE]);
    serde_json::from_str(&out).unwrap_or(Value::String(out))
}

/// Waits until `/healthz` answers 200 on `addr`.
fn wait_healthy(docker: &Docker, container: &str, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            && Conn::new(addr).get("/healthz", None).0 == 200
        {
            return;
        }
        let running = docker.run(&["inspect", "--format", "{{.State.Running}}", container]);
        assert!(
            running == "true" && Instant::now() < deadline,
            "the container did not become healthy (running: {running}):\n{}",
            String::from_utf8_lossy(&docker.output(&["logs", container]).stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The image as users build it from the Dockerfile: non-root, `serve` by
/// default, config from a read-only mounted directory in a run mode with
/// `${VAR:-default}` values from the container's environment, credentials
/// for a project, and a clean exit on SIGTERM within the grace period.
#[test]
fn the_image_serves_from_a_mounted_config_as_non_root_and_stops_on_sigterm() {
    let docker = Docker::start();
    let build_time = build_image(&docker);
    let size: u64 = docker
        .run(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .unwrap();
    println!(
        "image {IMAGE}: {:.1} MB, built in {:.1} s (prebuilt binary, debug build)",
        size as f64 / 1e6,
        build_time.as_secs_f64()
    );

    let config = inspect(&docker, "image", "{{json .Config}}");
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(
        config["Entrypoint"],
        json!(["/usr/local/bin/rise-registry"])
    );
    assert_eq!(config["Cmd"], json!(["serve"]));
    assert!(
        config["Healthcheck"].is_null(),
        "no HEALTHCHECK: {}",
        config["Healthcheck"]
    );

    let dir = config_dir();
    let port = support::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mount = format!("{}:/etc/rise-registry:ro", dir.path().display());
    let container = docker.run(&[
        "run",
        "--detach",
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        &mount,
        "--env",
        "RISE_CONFIG_RUN_MODE=production",
        "--env",
        &format!("RISE_LISTEN=127.0.0.1:{port}"),
        "--env",
        &format!("RISE_JWT_SECRET={SECRET}"),
        "--env",
        "RISE_REGISTRY_URL=registry.example.test:5000",
        IMAGE,
    ]);
    wait_healthy(&docker, &container, addr);

    // Not root inside: the process's real uid, as the host sees it.
    let pid = docker.run(&["inspect", "--format", "{{.State.Pid}}", &container]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65532"),
        "{uid}"
    );

    let mut c = claims("u-alice", Some("alice@example.com"), &[]);
    c["iss"] = json!("test-issuer");
    c["aud"] = json!("rise");
    let token = hs256(SECRET, &c);
    let (status, body) = Conn::new(addr).get("/registry/credentials?project=my-app", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["image"],
        "registry.example.test:5000/rise-apps/my-app",
        "the run mode's layer and the environment's values are in effect"
    );

    // `docker stop` sends SIGTERM and, after the timeout, SIGKILL (exit
    // 137): exit 0 well inside it is serve stopping by itself.
    let started = Instant::now();
    docker.run(&["stop", "--time", "30", &container]);
    let took = started.elapsed();
    let exit = docker.run(&["inspect", "--format", "{{.State.ExitCode}}", &container]);
    assert_eq!(exit, "0", "exit code after SIGTERM");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
    let logs = docker.output(&["logs", &container]);
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("SIGTERM received"),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
}
