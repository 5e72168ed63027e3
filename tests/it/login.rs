//! `rise-registry login` as a CI job runs it: the binary against serve
//! (the binary too) and real registries (Debian's docker-registry behind
//! serve's token realm, the AWS emulator's ECR), a temporary
//! `DOCKER_CONFIG`, and skopeo or a private Docker engine using what login
//! left there. GitHub Actions' token endpoint is a small server of the
//! test's own that checks what the runner's checks.

use crate::support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use support::jwt::{claims, hs256};
use support::oidc::{GithubWorkflow, OidcIssuer};
use support::registry::DockerRegistry;
use support::server::{BIN, Serve};
use support::{ADMIN_KEY, Emulator, dev_ca, free_port};

const SECRET: &str = "login-test-secret-login-test-secret-0123";

fn token(sub: &str) -> String {
    hs256(SECRET, &claims(sub, None, &[]))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rise-registry login ARGS` with only `env` in its environment, and
/// `stdin` on its standard input.
fn login(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("login")
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// serve as the token realm of a docker-registry, for `oci-token`.
struct OciToken {
    serve: Serve,
    registry: DockerRegistry,
    _pki: tempfile::TempDir,
    _config: tempfile::TempDir,
}

fn oci_token() -> OciToken {
    oci_token_with(&format!(
        r#"projects:
  - {{name: my-app, access: ["user:alice"]}}
auth: {{hs256_secret: {SECRET}}}
"#
    ))
}

/// As [`oci_token`], with `projects` and `auth` as given.
fn oci_token_with(projects_and_auth: &str) -> OciToken {
    let pki = tempfile::tempdir().unwrap();
    dev_ca(pki.path());
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("default.yaml"),
        format!(
            r#"
registry:
  type: oci-token
  registry_url: "{addr}"
  namespace: rise-apps
  service: rise-registry
  issuer: rise-broker
  signing_key_file: {pki}/token.key
  certificate_chain_file: {pki}/token.crt
{projects_and_auth}"#,
            pki = pki.path().display()
        ),
    )
    .unwrap();
    let serve = Serve::start_in(config.path(), "default", &[]);
    let registry = DockerRegistry::start_for(addr, config.path(), &serve.url("/registry/token"));
    OciToken {
        serve,
        registry,
        _pki: pki,
        _config: config,
    }
}

/// serve for a plain registry that takes no credentials from it.
fn oci_client_auth() -> Serve {
    Serve::start(
        &format!(
            r#"
registry: {{type: oci-client-auth, registry_url: "localhost:5000", namespace: rise-apps}}
projects:
  - {{name: my-app, access: ["user:alice"]}}
auth: {{hs256_secret: {SECRET}}}
"#
        ),
        &[],
    )
}

/// `auths[registry]` of a Docker config file, decoded: `user:password`.
fn login_in(config: &Value, registry: &str) -> String {
    let auth = config["auths"][registry]["auth"]
        .as_str()
        .unwrap_or_else(|| panic!("no auths entry for {registry}: {config}"));
    text(&STANDARD.decode(auth).unwrap())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// skopeo pushes a fresh one-layer image to `image` (`host/path`) with the
/// logins in `authfile`, as a daemonless builder would; its error text on
/// failure.
fn push_with(authfile: &Path, image: &str) -> Result<(), String> {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    support::oci::write_layout(&layout, "v1", b"pushed after rise-registry login\n");
    let out = support::oci::skopeo(
        work.path(),
        &[
            "copy",
            "--dest-tls-verify=false",
            "--authfile",
            authfile.to_str().unwrap(),
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{image}:v1"),
        ],
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn config_file_login_lets_skopeo_push_and_keeps_the_rest_of_the_file() {
    let s = oci_token();
    let docker_config = tempfile::tempdir().unwrap();
    let file = docker_config.path().join("config.json");
    let before = json!({
        "auths": {"other.example:5000": {"auth": "b3RoZXI6c2VjcmV0"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"User-Agent": "ci"},
    });
    std::fs::write(&file, before.to_string()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let image = format!("{}/rise-apps/my-app", s.registry.addr);
    let refused = push_with(&file, &image).expect_err("no login yet, so no push");
    assert!(
        refused.contains("unauthorized") || refused.contains("authentication required"),
        "{refused}"
    );

    let alice = token("alice");
    let out = login(
        &[
            "--server",
            &s.serve.url(""),
            "--project",
            "my-app",
            "--method",
            "config-file",
            "--token-file",
            "-",
        ],
        &[("DOCKER_CONFIG", docker_config.path().to_str().unwrap())],
        &format!("{alice}\n"),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", s.serve.logs());
    assert_eq!(text(&out.stdout), format!("{image}\n"), "only the image");
    assert_eq!(
        stderr,
        format!(
            "logged in to {} as rise (wrote {})\n",
            s.registry.addr,
            file.display()
        )
    );

    let after = read_json(&file);
    let credentials = login_in(&after, &s.registry.addr.to_string());
    assert!(credentials.starts_with("rise:rise.v1."), "a ticket");
    let (_, password) = credentials.split_once(':').unwrap();
    assert!(!stderr.contains(password) && !stderr.contains(&alice));
    for key in ["credHelpers", "HttpHeaders"] {
        assert_eq!(after[key], before[key], "{key} kept");
    }
    assert_eq!(
        after["auths"]["other.example:5000"],
        before["auths"]["other.example:5000"]
    );
    assert_eq!(after["auths"].as_object().unwrap().len(), 2);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        std::fs::read_dir(docker_config.path()).unwrap().count(),
        1,
        "no temporary file left"
    );

    push_with(&file, &image).unwrap_or_else(|e| panic!("{e}\n{}", s.registry.logs()));
    // The login is the project's: the next repository stays closed.
    assert!(push_with(&file, &format!("{}/rise-apps/other-app", s.registry.addr)).is_err());
}

/// An answer of the tests' stand-in servers: `status` and a JSON `body`.
fn json_answer(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A stand-in for GitHub Actions' OIDC token endpoint: it answers a token
/// only to the runner's request token and for the `rise` audience, and
/// records each request's query.
fn github_endpoint(
    request_token: &'static str,
    issued: String,
) -> (support::http::LoopbackServer, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let server = support::http::spawn_server(move |req: hyper::Request<_>| {
        let query = req.uri().query().unwrap_or_default().to_string();
        log.lock().unwrap().push(query.clone());
        let authorized = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("bearer {request_token}"));
        let pairs: Vec<&str> = query.split('&').collect();
        let ok = authorized
            && req.uri().path() == "/idtoken"
            && pairs.contains(&"api-version=2.0")
            && pairs.contains(&"audience=rise");
        let (status, body) = if ok {
            (200, json!({"count": 1, "value": issued}).to_string())
        } else {
            (403, r#"{"message":"refused"}"#.to_string())
        };
        async move { json_answer(status, body) }
    });
    (server, seen)
}

/// serve trusting a local stand-in of GitHub Actions' OIDC issuer (found
/// by discovery): `acme/my-app`'s main branch may push to `my-app`, and
/// `acme/deploy`'s jobs may pull it.
fn oci_token_for_github(github: &OidcIssuer) -> OciToken {
    oci_token_with(&format!(
        r#"projects:
  - name: my-app
    access:
      - issuer: github
        claims: {{repository: acme/my-app, ref: refs/heads/main}}
    pull_access:
      - issuer: github
        claims: {{repository: acme/deploy}}
auth:
  issuers:
    - {{name: github, issuer: "{}", audience: rise}}
"#,
        github.url
    ))
}

#[test]
fn login_in_github_actions_fetches_the_runner_token() {
    let github = OidcIssuer::start("github");
    let s = oci_token_for_github(&github);
    // What GitHub's endpoint would hand this job: its workload token.
    let job = GithubWorkflow::push("acme/my-app", "main").claims(&github.url, "rise");
    let (endpoint, seen) = github_endpoint("runner-request-token", github.rs256(&job));
    let url = format!("http://{}/idtoken?api-version=2.0", endpoint.addr);
    let home = tempfile::tempdir().unwrap();
    let nested_home = home.path().join("nested");
    let docker_dir = nested_home.join(".docker");
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token"),
        ("HOME", nested_home.to_str().unwrap()),
    ];
    let server = s.serve.url("");
    let args = [
        "--server",
        &server,
        "--project",
        "my-app",
        "--method",
        "config-file",
    ];
    let out = login(&args, &env, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}/rise-apps/my-app\n", s.registry.addr)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["api-version=2.0&audience=rise"],
        "one request, the runner's query and the audience"
    );
    let file = docker_dir.join("config.json");
    assert!(login_in(&read_json(&file), &s.registry.addr.to_string()).starts_with("rise:"));
    assert_eq!(mode(&docker_dir), 0o700, "the directory is created private");
    assert_eq!(mode(&file), 0o600);
    assert!(!text(&out.stderr).contains("runner-request-token"));

    // An audience the endpoint will not issue: its refusal, and the hint.
    let other = login(&[&args[..], &["--audience", "other"]].concat(), &env, "");
    assert_eq!(other.status.code(), Some(1));
    assert_eq!(
        text(&other.stderr),
        format!(
            "error: GitHub Actions' OIDC token endpoint http://{}/idtoken answered 403 Forbidden for audience `other`\n  hint: the job needs `permissions: id-token: write`; --audience must be a plain string\n",
            endpoint.addr
        )
    );
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        "api-version=2.0&audience=other"
    );
    assert!(other.stdout.is_empty());
    // The login works: skopeo pushes with what it wrote.
    let image = text(&out.stdout).trim().to_string();
    push_with(&file, &image).expect("the job's login pushes");
}

/// A deploy job logs in with `--access pull`: its login reads the image and
/// cannot push, and the same job asking for push is refused with the 404
/// guidance.
#[test]
fn a_deploy_job_logs_in_to_pull_only() {
    let github = OidcIssuer::start("github");
    let s = oci_token_for_github(&github);
    let server = s.serve.url("");
    let build =
        github.rs256(&GithubWorkflow::push("acme/my-app", "main").claims(&github.url, "rise"));
    let deploy =
        github.rs256(&GithubWorkflow::push("acme/deploy", "main").claims(&github.url, "rise"));
    let home = tempfile::tempdir().unwrap();
    let docker_config = home.path().join("docker");
    let env = [("DOCKER_CONFIG", docker_config.to_str().unwrap())];
    let file = docker_config.join("config.json");
    let base = [
        "--server",
        &server,
        "--project",
        "my-app",
        "--method",
        "config-file",
        "--token-file",
        "-",
    ];

    let out = login(&base, &env, &build);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let image = text(&out.stdout).trim().to_string();
    push_with(&file, &image).expect("the build job pushes");

    let out = login(&[&base[..], &["--access", "pull"]].concat(), &env, &deploy);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), image);
    let err = push_with(&file, &image).expect_err("a pull login cannot push");
    assert!(
        err.contains("denied") || err.contains("unauthorized"),
        "{err}"
    );
    let work = tempfile::tempdir().unwrap();
    let inspect = support::oci::skopeo(
        work.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--authfile",
            file.to_str().unwrap(),
            &format!("docker://{image}:v1"),
        ],
    );
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));

    let out = login(&base, &env, &deploy);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("has no project `my-app` that this token may push to (404"),
        "{stderr}"
    );
}

#[test]
fn login_errors_say_what_to_fix() {
    let serve = oci_client_auth();
    let server = serve.url("");
    let alice = token("alice");
    let docker_config = tempfile::tempdir().unwrap();
    let dc = [("DOCKER_CONFIG", docker_config.path().to_str().unwrap())];
    let failed = |out: &Output| -> String {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "nothing on stdout");
        text(&out.stderr)
    };
    let base = ["--server", server.as_str(), "--project"];

    // No token anywhere, outside CI and in GitLab CI.
    let none = failed(&login(&[&base[..], &["my-app"]].concat(), &[], ""));
    assert_eq!(
        none,
        "error: no caller token to ask the broker with: tried --token, --token-file, --token-env, and GitHub Actions' OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not both set)\n  hint: pass --token-file FILE (`-` for standard input) or --token-env VAR; in CI see docs/ci.md\n"
    );
    let gitlab = failed(&login(
        &[&base[..], &["my-app"]].concat(),
        &[("GITLAB_CI", "true")],
        "",
    ));
    assert!(
        gitlab.ends_with("hint: in GitLab CI, declare the token in the job (`id_tokens: {RISE_ID_TOKEN: {aud: rise}}`) and pass `--token-env RISE_ID_TOKEN`\n"),
        "{gitlab}"
    );

    // A project the broker does not have (or will not say it has).
    let unknown = failed(&login(
        &[&base[..], &["nope", "--token-env", "RISE_ID_TOKEN"]].concat(),
        &[("RISE_ID_TOKEN", &alice)],
        "",
    ));
    assert_eq!(
        unknown,
        format!(
            "error: the broker at {server} has no project `nope` that this token may push to (404 project_not_found: no such project, or no access to it)\n  hint: check the --project name, and that one of the project's `access` rules in serve's config matches this token (its identities, or a CI token's issuer and claims)\n"
        )
    );

    // A token serve does not accept.
    let forged = hs256(
        "another-secret-another-secret-another-01",
        &claims("alice", None, &[]),
    );
    let refused = failed(&login(
        &[&base[..], &["my-app", "--token", &forged]].concat(),
        &[],
        "",
    ));
    assert!(
        refused.starts_with(&format!(
            "error: the broker at {server} refused the token (401 invalid_token: "
        )) && refused.contains("check the token's issuer (`iss`) and audience (`aud`)"),
        "{refused}"
    );

    // Nothing listening (and no time to wait for it to come up).
    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = failed(&login(
        &[
            "--server",
            &closed,
            "--project",
            "my-app",
            "--token",
            &alice,
            "--timeout",
            "0",
        ],
        &[],
        "",
    ));
    assert!(
        unreachable.starts_with(&format!("error: cannot reach the broker at {closed}: ")),
        "{unreachable}"
    );
    assert!(
        unreachable.ends_with("\n  hint: check --server (scheme, host and port) and that serve runs and is reachable from here\n"),
        "{unreachable}"
    );

    // A registry that takes no credentials: the image, and nothing written.
    let anonymous = login(
        &[
            &base[..],
            &["my-app", "--token", &alice, "--method", "config-file"],
        ]
        .concat(),
        &dc,
        "",
    );
    assert!(anonymous.status.success(), "{}", text(&anonymous.stderr));
    assert_eq!(text(&anonymous.stdout), "localhost:5000/rise-apps/my-app\n");
    assert_eq!(
        text(&anonymous.stderr),
        "localhost:5000 takes no credentials from the broker: nothing was written; push with the registry's own login, if it asks for one\n"
    );
    assert_eq!(std::fs::read_dir(docker_config.path()).unwrap().count(), 0);
    for out in [&none, &unknown, &refused, &unreachable] {
        assert!(!out.contains(&alice), "no token in messages");
    }
}

/// `--method auto` with a Docker engine that answers logs in through
/// `docker login` (the engine checks the login with the registry), and
/// falls back to the config file when the engine does not answer.
#[test]
fn auto_logs_in_through_a_docker_engine_that_answers() {
    let s = oci_token();
    let docker = support::docker::Docker::start();
    // A PATH holding only this docker client: no podman, no other docker.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(docker.client(), bin.path().join("docker")).unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    let file = docker_config.path().join("config.json");
    let server = s.serve.url("");
    let alice = token("alice");
    let dir = docker_config.path().to_str().unwrap();
    let path = bin.path().to_str().unwrap();
    let run = |docker_host: &str| {
        login(
            &[
                "--server",
                &server,
                "--project",
                "my-app",
                "--token-env",
                "T",
            ],
            &[
                ("PATH", path),
                ("DOCKER_HOST", docker_host),
                ("DOCKER_CONFIG", dir),
                ("T", &alice),
            ],
            "",
        )
    };
    let out = run(&docker.host());
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}\n{}\n{}",
        docker.daemon_log(),
        s.registry.logs()
    );
    assert_eq!(
        stderr,
        format!("logged in to {} as rise (docker login)\n", s.registry.addr)
    );
    let image = text(&out.stdout).trim().to_string();
    // What docker stored works for a daemonless client too.
    push_with(&file, &image).unwrap_or_else(|e| panic!("{e}\n{}", s.registry.logs()));

    std::fs::remove_file(&file).unwrap();
    let gone = format!("unix://{}/no-engine.sock", bin.path().display());
    let fallback = run(&gone);
    assert!(fallback.status.success(), "{}", text(&fallback.stderr));
    assert_eq!(
        text(&fallback.stderr),
        format!(
            "logged in to {} as rise (wrote {})\n",
            s.registry.addr,
            file.display()
        )
    );
    assert!(login_in(&read_json(&file), &s.registry.addr.to_string()).starts_with("rise:"));
}

/// ECR through the AWS emulator: the login is for the emulator's registry
/// host, as user `AWS`.
#[tokio::test]
async fn ecr_login_writes_the_registry_host_with_user_aws() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let serve = Serve::start(
        &format!(
            "{}projects:\n  - {{name: my-app, access: [\"group:team-a\"]}}\nauth: {{hs256_secret: {SECRET}}}\n",
            emulator.registry_block()
        ),
        &[
            ("AWS_ACCESS_KEY_ID", ADMIN_KEY),
            ("AWS_SECRET_ACCESS_KEY", ADMIN_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let docker_config = tempfile::tempdir().unwrap();
    let out = login(
        &[
            "--server",
            &serve.url(""),
            "--project",
            "my-app",
            "--method",
            "config-file",
            "--token",
            &hs256(SECRET, &claims("u-1", None, &["team-a"])),
        ],
        &[("DOCKER_CONFIG", docker_config.path().to_str().unwrap())],
        "",
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        serve.logs()
    );
    let host = emulator.addr.to_string();
    assert_eq!(text(&out.stdout), format!("{host}/rise/my-app\n"));
    let credentials = login_in(&read_json(&docker_config.path().join("config.json")), &host);
    let (user, password) = credentials.split_once(':').unwrap();
    assert_eq!(user, "AWS");
    assert!(!password.is_empty());
}

/// docs/ci.md's flag table and README's usage line against `login --help`:
/// each flag login has is documented, and nothing else is.
#[test]
fn the_docs_name_every_login_flag() {
    let help = Command::new(BIN)
        .args(["login", "--help"])
        .env_clear()
        .output()
        .unwrap();
    let global = [
        "--config-dir",
        "--run-mode",
        "--log-format",
        "--verbose",
        "--help",
        "--version",
    ];
    // Option lines: `      --name <VALUE>` or `  -v, --verbose...`.
    let flags: Vec<String> = text(&help.stdout)
        .lines()
        .filter_map(|l| l.trim_start().split_once("--"))
        .filter(|(lead, _)| lead.is_empty() || lead.ends_with(", "))
        .map(|(_, rest)| format!("--{}", rest.split([' ', '.']).next().unwrap()))
        .filter(|f| !global.contains(&f.as_str()))
        .collect();
    assert_eq!(flags.len(), 10, "{flags:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ci.md")).unwrap();
    let section = doc
        .split("\n## Flags\n")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("docs/ci.md has a Flags section");
    let table: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|l| l.split([' ', '`']).next().unwrap())
        .collect();
    let documented: Vec<String> = table.iter().map(|f| format!("--{f}")).collect();
    assert_eq!(documented, flags, "docs/ci.md's flags table");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let usage = readme
        .lines()
        .find(|l| l.trim_start().starts_with("login "))
        .expect("README's usage has a login line");
    for flag in &flags {
        assert!(usage.contains(flag.as_str()), "README's usage lacks {flag}");
    }
}

/// A broker that is busy twice (503 with `Retry-After: 1`, as serve answers
/// a job whose turn at AWS's quota is a second away), then grants: login
/// waits as told, says so on stderr once per wait, and logs in. A broker
/// that stays busy past `--timeout` makes it give up, saying so; a refusal
/// that is not busy fails at once.
#[test]
fn login_waits_for_a_busy_broker_up_to_its_timeout() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let busy_twice = support::http::spawn_server(move |_req: hyper::Request<_>| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                let mut r = json_answer(
                    503,
                    r#"{"error":{"code":"registry_unavailable","message":"AWS's request quota is spoken for"}}"#.into(),
                );
                r.headers_mut().insert("retry-after", "1".parse().unwrap());
                r
            } else {
                json_answer(
                    200,
                    json!({"credentials": {"registry_url": "localhost:5000", "username": "", "password": "", "expires_in": null, "expires_at": null},
                        "repository": "rise-apps/my-app", "image": "localhost:5000/rise-apps/my-app"}).to_string(),
                )
            }
        }
    });
    let docker_config = tempfile::tempdir().unwrap();
    let env = [
        ("RISE_ID_TOKEN", "a-token"),
        ("DOCKER_CONFIG", docker_config.path().to_str().unwrap()),
    ];
    let url = format!("http://{}", busy_twice.addr);
    let args = |timeout: &'static str| {
        vec![
            "--server".to_string(),
            url.clone(),
            "--project".into(),
            "my-app".into(),
            "--token-env".into(),
            "RISE_ID_TOKEN".into(),
            "--method".into(),
            "config-file".into(),
            "--timeout".into(),
            timeout.into(),
        ]
    };
    let started = std::time::Instant::now();
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        login(&a, &env, "")
    };
    let out = run(args("30"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "waited as told"
    );
    let waits: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("asking again in 1 s"))
        .collect();
    assert_eq!(waits.len(), 2, "{stderr}");
    assert!(
        waits[0].contains("cannot issue credentials right now (503 registry_unavailable"),
        "{stderr}"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 3);

    // Always busy, and a timeout of 2 s: gives up after a few tries.
    asked.store(0, Ordering::SeqCst);
    let always = support::http::spawn_server(move |_req: hyper::Request<_>| async move {
        let mut r = json_answer(
            503,
            r#"{"error":{"code":"registry_unavailable","message":"busy"}}"#.into(),
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        r
    });
    let url_always = format!("http://{}", always.addr);
    let mut a = args("2");
    a[1] = url_always;
    let out = run(a);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gave up after") && stderr.contains("(--timeout 2 s)"),
        "{stderr}"
    );

    // A refusal that is not busy: no wait at all.
    let refused = hostile_broker(
        404,
        r#"{"error":{"code":"project_not_found","message":"no"}}"#,
    );
    let mut a = args("30");
    a[1] = format!("http://{}", refused.addr);
    let started = std::time::Instant::now();
    let out = run(a);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !text(&out.stderr).contains("asking again"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// A broker that answers every credential request with `status` and
/// `body`, where `{auth}` in the body is replaced by the request's
/// `Authorization` header: a broker (or a proxy before one) that echoes
/// what it was sent, or hands out what it likes.
fn hostile_broker(status: u16, body: &'static str) -> support::http::LoopbackServer {
    support::http::spawn_server(move |req: hyper::Request<_>| {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = body.replace("{auth}", &auth);
        async move { json_answer(status, body) }
    })
}

/// login takes nothing from a broker on trust: an answer that echoes the
/// caller token never puts it on stderr, an image on another registry is
/// refused and nothing is printed to push to, and `--registry` pins the
/// registry the credentials must be for.
#[test]
fn login_checks_what_the_broker_answers() {
    let token = "caller-token-that-must-not-leak";
    let env = [("RISE_ID_TOKEN", token)];
    let run = |server: &support::http::LoopbackServer, extra: &[&str]| {
        let url = format!("http://{}", server.addr);
        let args = [
            &[
                "--server",
                url.as_str(),
                "--project",
                "my-app",
                "--token-env",
                "RISE_ID_TOKEN",
            ][..],
            extra,
        ]
        .concat();
        login(&args, &env, "")
    };

    let echo = hostile_broker(
        403,
        r#"{"error":{"code":"forbidden","message":"you sent {auth}"}}"#,
    );
    let out = run(&echo, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains(token),
        "the token reached stderr: {stderr}"
    );
    assert!(stderr.contains("you sent Bearer [REDACTED]"), "{stderr}");

    let elsewhere = hostile_broker(
        200,
        r#"{"credentials":{"registry_url":"localhost:5000","username":"","password":""},"image":"evil.example.com/rise-apps/my-app"}"#,
    );
    let out = run(&elsewhere, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "an image was printed: {}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("names image `evil.example.com/rise-apps/my-app`, which is not a repository on localhost:5000"),
        "{stderr}"
    );

    let other = hostile_broker(
        200,
        r#"{"credentials":{"registry_url":"other.example.com:5000","username":"","password":""},"image":"other.example.com:5000/rise-apps/my-app"}"#,
    );
    let out = run(&other, &["--registry", "localhost:5000"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr
            .contains("credentials for other.example.com:5000, not for --registry localhost:5000"),
        "{stderr}"
    );
    // The same answer without the pin is a registry without login.
    let out = run(&other, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "other.example.com:5000/rise-apps/my-app\n"
    );
}

/// The registry client login runs gets the registry password on its
/// stdin and nothing else of the caller's: the variable holding the caller
/// token (and GitHub Actions' request token) is not in its environment.
#[test]
fn the_client_does_not_inherit_the_token_variables() {
    let broker = hostile_broker(
        200,
        r#"{"credentials":{"registry_url":"localhost:5000","username":"AWS","password":"registry-password"},"image":"localhost:5000/rise-apps/my-app"}"#,
    );
    let bin = tempfile::tempdir().unwrap();
    let seen = bin.path().join("env.txt");
    let podman = bin.path().join("podman");
    std::fs::write(
        &podman,
        format!("#!/bin/sh\nenv > '{}'\ncat > /dev/null\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(&podman, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let url = format!("http://{}", broker.addr);
    let out = login(
        &[
            "--server",
            &url,
            "--project",
            "my-app",
            "--token-env",
            "RISE_ID_TOKEN",
            "--method",
            "podman",
        ],
        &[
            ("RISE_ID_TOKEN", "caller-token-in-a-variable"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token"),
            ("PATH", &path),
            ("KEEP_ME", "yes"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.contains("KEEP_ME=yes"), "{env}");
    assert!(!env.contains("caller-token-in-a-variable"), "{env}");
    assert!(!env.contains("runner-request-token"), "{env}");
}
