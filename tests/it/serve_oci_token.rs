//! `oci-token` end to end: serve as the token realm of Debian's
//! docker-registry (CNCF distribution 2.8) on loopback, skopeo as the
//! client, and the keys and registry config made by the binary's own
//! `oci-token dev-ca` and `oci-token registry-config`.
//!
//! serve runs in the test process ([`TestServer`]) on a multi-thread
//! runtime: skopeo and the plain sockets block the test's thread while the
//! registry asks serve's realm for tokens, which the server's tasks answer
//! on the other threads. The commands (`dev-ca`, `registry-config`,
//! `config --check`) run the built binary, as users run them.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::Method;
use rise_registry::auth::Caller;
use rise_registry::config::OciTokenConfig;
use rise_registry::naming::ProjectName;
use rise_registry::registry::oci_token::OciTokenProvider;
use serde_json::{Value, json};
use support::http::{get, send};
use support::in_process::TestServer;
use support::jwt::{claims, hs256};
use support::registry::DockerRegistry;
use support::server::BIN;
use support::{dev_ca, free_port};

const SECRET: &str = "oci-token-test-secret-oci-token-test-0123";
const SERVICE: &str = "rise-registry";
const ISSUER: &str = "rise-broker";

/// serve, the registry it is realm of, and the files behind them. Other
/// areas' tests use it with their own projects and auth ([`setup_with`]).
pub(crate) struct Setup {
    pub(crate) serve: TestServer,
    pub(crate) registry: DockerRegistry,
    pub(crate) pki: tempfile::TempDir,
    work: tempfile::TempDir,
}

/// The projects and auth of this file's tests.
fn access() -> String {
    format!(
        r#"projects:
  - {{name: my-app, access: ["user:alice"]}}
  - {{name: other-app, access: ["user:bob"]}}
auth:
  hs256_secret: {SECRET}
"#
    )
}

fn serve_config(registry: SocketAddr, pki: &Path) -> String {
    format!("{}{}", registry_block(registry, pki), access())
}

/// The `registry:` block for the registry at `registry`, signing with the
/// keys `dev-ca` wrote to `pki`.
pub(crate) fn registry_block(registry: SocketAddr, pki: &Path) -> String {
    format!(
        r#"
registry:
  type: oci-token
  registry_url: "{registry}"
  namespace: rise-apps
  service: {SERVICE}
  issuer: {ISSUER}
  signing_key_file: {key}
  certificate_chain_file: {chain}
"#,
        key = pki.join("token.key").display(),
        chain = pki.join("token.crt").display(),
    )
}

/// serve exports when its signing chain expires, read from the chain it
/// loaded, so an alert can fire weeks before tokens stop verifying.
#[tokio::test]
async fn the_signing_chains_expiry_is_a_metric() {
    use rustls_pki_types::pem::PemObject;
    let setup = setup().await;
    let pem = std::fs::read(setup.pki.path().join("token.crt")).unwrap();
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .map(Result::unwrap)
        .collect();
    let expected = rise_registry::x509::soonest_expiry(chain.iter().map(|c| c.as_ref())).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        expected > now + 30 * 86_400,
        "dev-ca issues for longer than a month"
    );
    let text = crate::support::http::get(&setup.serve.url("/metrics"), None)
        .await
        .body;
    assert!(
        text.contains(&format!(
            "rise_registry_certificate_expiry_timestamp_seconds{{certificate=\"oci-token\"}} {expected}\n"
        )),
        "{text}"
    );
    assert!(!text.contains("certificate=\"tls\""), "{text}");
}

async fn setup() -> Setup {
    setup_with(&access()).await
}

/// serve with `access` (its `projects:` and `auth:` YAML) as the realm of a
/// fresh registry.
pub(crate) async fn setup_with(access: &str) -> Setup {
    let pki = tempfile::tempdir().unwrap();
    dev_ca(pki.path());
    let registry_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!("{}{access}", registry_block(registry_addr, pki.path()));
    let serve = TestServer::start(&config).await;

    // The registry's side, as the command prints it.
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("default.yaml"), &config).unwrap();
    let registry =
        DockerRegistry::start_for(registry_addr, conf.path(), &serve.url("/registry/token"));
    let config_yml = registry.config_yml();
    assert!(
        config_yml.contains(&format!("service: {SERVICE}")),
        "{config_yml}"
    );
    assert_eq!(
        std::fs::read(registry.root_bundle()).unwrap(),
        std::fs::read(pki.path().join("ca.crt")).unwrap(),
        "the bundle is the chain's root"
    );
    Setup {
        serve,
        registry,
        pki,
        work: tempfile::tempdir().unwrap(),
    }
}

fn bearer(sub: &str) -> String {
    hs256(SECRET, &claims(sub, None, &[]))
}

impl Setup {
    /// `/registry/credentials` for `project` as `sub`: (user:password, body).
    async fn credentials(&self, sub: &str, project: &str) -> (String, Value) {
        self.login(&bearer(sub), &format!("project={project}"))
            .await
    }

    /// `/registry/credentials?{query}` with `token`, which must succeed:
    /// (user:password, body).
    pub(crate) async fn login(&self, token: &str, query: &str) -> (String, Value) {
        let url = self.serve.url(&format!("/registry/credentials?{query}"));
        let reply = get(&url, Some(token)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        let c = &body["credentials"];
        let login = format!(
            "{}:{}",
            c["username"].as_str().unwrap(),
            c["password"].as_str().unwrap()
        );
        (login, body)
    }

    fn image(&self, repository: &str) -> String {
        format!("docker://{}/{repository}:v1", self.registry.addr)
    }

    /// Pushes a fresh one-layer image to `repository`; the digest of the
    /// manifest as pushed (skopeo compresses the layer on the way) on
    /// success, skopeo's error otherwise.
    pub(crate) fn push(
        &self,
        login: &str,
        repository: &str,
        content: &[u8],
    ) -> Result<String, String> {
        let layout = self.work.path().join(format!("layout-{}", free_port()));
        support::oci::write_layout(&layout, "v1", content);
        let digest_file = layout.join("pushed-digest");
        let out = support::oci::skopeo(
            self.work.path(),
            &[
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                login,
                "--digestfile",
                digest_file.to_str().unwrap(),
                &format!("oci:{}:v1", layout.display()),
                &self.image(repository),
            ],
        );
        if out.status.success() {
            Ok(std::fs::read_to_string(digest_file).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The manifest digest of `repository:v1`, read with `login`.
    pub(crate) fn pull_digest(&self, login: &str, repository: &str) -> Result<String, String> {
        let out = support::oci::skopeo(
            self.work.path(),
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                login,
                &self.image(repository),
            ],
        );
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            Ok(v["Digest"].as_str().unwrap().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The key fingerprint of the running config's single-issuer keys,
    /// which serve's verifier gives the callers it verifies.
    fn issuer_key(&self) -> String {
        let config = self.serve.app.config();
        config
            .auth
            .issuer_named("default")
            .unwrap()
            .key_fingerprint()
    }

    pub(crate) fn realm(&self, query: &str) -> String {
        self.serve.url(&format!("/registry/token?{query}"))
    }

    /// The same broker key, loaded in the test: to mint tickets at chosen
    /// times.
    fn broker(&self, pki: &Path) -> OciTokenProvider {
        let config = OciTokenConfig {
            registry_url: rise_registry::naming::RegistryHost::parse(
                &self.registry.addr.to_string(),
            )
            .unwrap(),
            namespace: rise_registry::naming::RepoNamespace::parse("rise-apps").unwrap(),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            signing_key_file: rise_registry::config::ConfigPath::new(""),
            certificate_chain_file: rise_registry::config::ConfigPath::new(""),
            ticket_ttl_seconds: 3600,
            token_ttl_seconds: 300,
        };
        OciTokenProvider::from_pem(
            config,
            &std::fs::read(pki.join("token.key")).unwrap(),
            &std::fs::read(pki.join("token.crt")).unwrap(),
        )
        .unwrap()
    }
}

pub(crate) fn basic(login: &str) -> String {
    format!("Basic {}", STANDARD.encode(login))
}

pub(crate) fn token_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn now() -> i64 {
    support::jwt::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_push_and_pull_their_own_repository_and_nothing_else() {
    let s = setup().await;
    let (alice, body) = s.credentials("alice", "my-app").await;
    let c = &body["credentials"];
    assert_eq!(c["registry_url"], s.registry.addr.to_string());
    assert_eq!(c["username"], "rise");
    assert!(c["password"].as_str().unwrap().starts_with("rise.v1."));
    let expires_in = c["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    assert!(c["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        body["image"],
        format!("{}/rise-apps/my-app", s.registry.addr)
    );

    let pushed = s
        .push(&alice, "rise-apps/my-app", b"my-app v1\n")
        .unwrap_or_else(|e| panic!("push: {e}\nregistry log:\n{}", s.registry.logs()));
    assert_eq!(
        s.pull_digest(&alice, "rise-apps/my-app"),
        Ok(pushed.clone())
    );

    // bob's own project works for bob; alice's ticket reaches none of it.
    let (bob, _) = s.credentials("bob", "other-app").await;
    let bobs = s.push(&bob, "rise-apps/other-app", b"other v1\n").unwrap();
    let refused_push = s.push(&alice, "rise-apps/other-app", b"intruder\n");
    assert!(refused_push.is_err(), "alice pushed to other-app");
    assert!(s.pull_digest(&alice, "rise-apps/other-app").is_err());
    assert_eq!(
        s.pull_digest(&bob, "rise-apps/other-app"),
        Ok(bobs),
        "other-app unchanged"
    );
    // Nor the namespace's neighbours or the top level.
    assert!(s.push(&alice, "rise-apps/my-app2", b"x\n").is_err());
    assert!(s.push(&alice, "my-app", b"x\n").is_err());

    // The audit says who exchanged which ticket for what.
    let audit = s
        .serve
        .audit_matching(|l| l["audit"] == "token" && l["outcome"] == "issued");
    assert!(audit.iter().any(|l| l["subject"] == "alice"
        && l["project"] == "my-app"
        && l["granted"] == json!(["rise-apps/my-app:pull", "rise-apps/my-app:push"])));
    assert!(
        audit
            .iter()
            .filter(|l| l["subject"] == "alice")
            .all(|l| l["granted"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g.as_str().unwrap().starts_with("rise-apps/my-app:"))),
        "{audit:?}"
    );
    let log = s.serve.audit_text();
    assert!(
        !log.contains(c["password"].as_str().unwrap()),
        "no ticket in the audit"
    );

    // A registry restart changes nothing: same chain, same tickets.
    let mut s = s;
    s.registry.restart();
    assert_eq!(s.pull_digest(&alice, "rise-apps/my-app"), Ok(pushed));
    assert!(s.push(&alice, "rise-apps/my-app", b"my-app v2\n").is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_realm_grants_only_the_tickets_repository_and_the_registry_agrees() {
    let s = setup().await;
    let (alice, _) = s.credentials("alice", "my-app").await;
    let auth = basic(&alice);

    // Own scope: pull and push; the token opens the repository.
    let reply = send(
        Method::GET,
        &s.realm("service=rise-registry&scope=repository%3Arise-apps%2Fmy-app%3Apull%2Cpush"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    assert!(body.get("refresh_token").is_none(), "not asked for");
    let own = body["token"].as_str().unwrap().to_string();
    let c = token_claims(&own);
    assert_eq!(c["aud"], SERVICE);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(
        c["access"],
        json!([{"type": "repository", "name": "rise-apps/my-app", "actions": ["pull", "push"]}])
    );
    let tags = |repo: &str, token: &str| {
        let url = s.registry.url(&format!("/v2/{repo}/tags/list"));
        let token = token.to_string();
        async move { get(&url, Some(&token)).await.status.as_u16() }
    };
    assert_eq!(
        tags("rise-apps/my-app", &own).await,
        404,
        "authorised: NAME_UNKNOWN"
    );

    // Another project's scope: a token with empty access, which the
    // registry refuses; no error that would reveal the repository.
    let reply = send(
        Method::GET,
        &s.realm("scope=repository:rise-apps/other-app:pull,push&scope=registry:catalog:*"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let other = reply.json()["token"].as_str().unwrap().to_string();
    assert_eq!(token_claims(&other)["access"], json!([]));
    assert_eq!(tags("rise-apps/other-app", &other).await, 401);
    assert_eq!(tags("rise-apps/other-app", &own).await, 401);

    // A token signed by any other key is refused by the registry.
    let stranger_pki = tempfile::tempdir().unwrap();
    dev_ca(stranger_pki.path());
    let stranger = s.broker(stranger_pki.path());
    let creds = stranger.issue_ticket(
        &ProjectName::parse("my-app").unwrap(),
        &Caller::from_subject("mallory"),
        now(),
    );
    let ticket = stranger
        .verify_ticket(creds.password.expose(), now())
        .unwrap();
    let forged = stranger.registry_token(&ticket, ["repository:rise-apps/my-app:pull,push"], now());
    assert_eq!(tags("rise-apps/my-app", &forged.token).await, 401);

    // POST, as containerd does, with a refresh token requested and used.
    let password = alice.split_once(':').unwrap().1;
    let form = format!(
        "grant_type=password&username=rise&password={password}&service=rise-registry\
         &scope=repository%3Arise-apps%2Fmy-app%3Apull&access_type=offline&client_id=test"
    );
    let reply = send(
        Method::POST,
        &s.realm(""),
        &[("content-type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["refresh_token"], password);
    assert_eq!(
        token_claims(body["access_token"].as_str().unwrap())["access"][0]["actions"],
        json!(["pull"])
    );
    let reply = send(
        Method::POST,
        &s.realm(""),
        &[],
        &format!("grant_type=refresh_token&refresh_token={password}&scope=repository:rise-apps/my-app:push"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // A chunked body is read as well.
    let chunked = post_chunked(s.serve.addr, &form);
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");

    assert_eq!(
        send(Method::PUT, &s.realm(""), &[], "")
            .await
            .header("allow"),
        Some("GET, POST")
    );
}

/// POSTs `body` to the realm with `Transfer-Encoding: chunked`, in two
/// chunks, over a plain socket; the raw response.
fn post_chunked(addr: SocketAddr, body: &str) -> String {
    let (a, b) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /registry/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_forged_and_foreign_tickets_are_refused() {
    let s = setup().await;
    let my_app = ProjectName::parse("my-app").unwrap();
    let broker = s.broker(s.pki.path());
    // As serve's verifier would: under the running issuer's key.
    let key = s.issuer_key();
    let alice = Caller::from_subject("alice").with_issuer_key(&key);
    let scope = "scope=repository:rise-apps/my-app:pull,push";
    let exchange = |ticket: String| {
        let url = s.realm(scope);
        async move {
            send(
                Method::GET,
                &url,
                &[("authorization", &basic(&format!("rise:{ticket}")))],
                "",
            )
            .await
        }
    };

    // The same key, two hours ago: a genuine but expired ticket.
    let expired = broker.issue_ticket(&my_app, &alice, now() - 7200);
    let reply = exchange(expired.password.expose().clone()).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "invalid_ticket");
    assert!(
        reply.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    let login = format!("rise:{}", expired.password.expose());
    assert!(s.push(&login, "rise-apps/my-app", b"late\n").is_err());

    // A current ticket, its project rewritten: the MAC no longer fits.
    let fresh = broker.issue_ticket(&my_app, &alice, now());
    let parts: Vec<&str> = fresh.password.expose().split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    payload["prj"] = json!("other-app");
    let forged = format!(
        "rise.v1.{}.{}",
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[3]
    );
    assert_eq!(exchange(forged).await.status, 401);

    // A ticket signed with another broker's key (re-signed).
    let stranger_pki = tempfile::tempdir().unwrap();
    dev_ca(stranger_pki.path());
    let resigned = s
        .broker(stranger_pki.path())
        .issue_ticket(&my_app, &alice, now());
    assert_eq!(
        exchange(resigned.password.expose().clone()).await.status,
        401
    );
    let login = format!("rise:{}", resigned.password.expose());
    assert!(s.push(&login, "rise-apps/my-app", b"resigned\n").is_err());

    // A JWT or nothing at all is not a ticket.
    assert_eq!(exchange(bearer("alice")).await.status, 401);
    let reply = send(Method::GET, &s.realm(scope), &[], "").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["code"], "missing_ticket");

    // The genuine ticket works, but not for another service.
    let ok = exchange(fresh.password.expose().clone()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let reply = send(
        Method::GET,
        &s.realm("service=elsewhere"),
        &[(
            "authorization",
            &basic(&format!("rise:{}", fresh.password.expose())),
        )],
        "",
    )
    .await;
    assert_eq!(reply.status, 400);
}

#[test]
fn config_check_loads_the_key_and_names_what_does_not_fit() {
    let pki = tempfile::tempdir().unwrap();
    dev_ca(pki.path());
    let conf = tempfile::tempdir().unwrap();
    let config = serve_config("127.0.0.1:5000".parse().unwrap(), pki.path());
    std::fs::write(conf.path().join("default.yaml"), &config).unwrap();
    let check = || {
        Command::new(BIN)
            .arg("--config-dir")
            .arg(conf.path())
            .args(["--run-mode", "default", "config", "--check"])
            .env_clear()
            .output()
            .unwrap()
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("registry oci-token"));

    // A key from another CA run: the leaf does not certify it.
    let other = tempfile::tempdir().unwrap();
    dev_ca(other.path());
    std::fs::copy(other.path().join("token.key"), pki.path().join("token.key")).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registry.signing_key_file") && err.contains("does not match"),
        "{err}"
    );
    let line_of = |key: &str| {
        config
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap()
            + 1
    };
    // Both files gone: both named at once, each at its own file and line.
    std::fs::remove_file(pki.path().join("token.crt")).unwrap();
    std::fs::remove_file(pki.path().join("token.key")).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    for key in ["signing_key_file", "certificate_chain_file"] {
        assert!(
            err.contains(&format!("default.yaml:{}: registry.{key}: `", line_of(key))),
            "{key}: {err}"
        );
    }
    assert!(err.contains("cannot be read"), "{err}");
    assert!(err.contains("2 problems"), "{err}");
}

/// `config --check` reads every file config names as serve would, and
/// reports them all at once at their keys; serve refuses the same files
/// with the same words. Relative paths mean the config directory, wherever
/// the command runs.
#[test]
fn config_check_and_serve_read_the_named_files_from_the_config_directory() {
    let conf = tempfile::tempdir().unwrap();
    dev_ca(&conf.path().join("pki"));
    let config = serve_config("127.0.0.1:5000".parse().unwrap(), Path::new("pki"));
    assert!(
        config.contains("signing_key_file: pki/token.key"),
        "{config}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |config: &str, args: &[&str]| {
        std::fs::write(conf.path().join("default.yaml"), config).unwrap();
        Command::new(BIN)
            .current_dir(elsewhere.path())
            .arg("--config-dir")
            .arg(conf.path())
            .args(["--run-mode", "default"])
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let out = run(&config, &["config", "--check"]);
    assert!(
        out.status.success(),
        "relative to the config dir, not the working dir: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // TLS files that are not there, beside a chain that is not PEM.
    std::fs::write(conf.path().join("pki/token.crt"), "not a certificate\n").unwrap();
    let broken =
        format!("{config}server:\n  tls: {{cert_file: /nope/tls.crt, key_file: tls.key}}\n");
    let tls_line = broken.lines().count();
    let out = run(&broken, &["config", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let check_err = String::from_utf8_lossy(&out.stderr).into_owned();
    for expected in [
        format!("default.yaml:{tls_line}: server.tls.cert_file: `/nope/tls.crt`: cannot be read"),
        format!(
            "default.yaml:{tls_line}: server.tls.key_file: `{}`: cannot be read",
            conf.path().join("tls.key").display()
        ),
        "registry.certificate_chain_file: `".to_string(),
        "3 problems".to_string(),
        "resolved against the config directory".to_string(),
    ] {
        assert!(check_err.contains(&expected), "{expected}:\n{check_err}");
    }
    let out = run(&broken, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert!(
        serve_err.contains(check_err.lines().nth(1).unwrap().trim()),
        "serve says what config --check says:\n{serve_err}\n---\n{check_err}"
    );
}

#[test]
fn the_shipped_oci_token_run_mode_accepts_what_dev_ca_writes() {
    let pki = tempfile::tempdir().unwrap();
    dev_ca(pki.path());
    let out = Command::new(BIN)
        .arg("--config-dir")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .args(["--run-mode", "oci-token", "config", "--check"])
        .env_clear()
        .env("RISE_TOKEN_KEY", pki.path().join("token.key"))
        .env("RISE_TOKEN_CHAIN", pki.path().join("token.crt"))
        .env("RISE_JWT_SECRET", "a-local-secret-of-enough-length-0123456")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("registry oci-token"));

    // Without the variables, the shipped defaults name `../pki` beside the
    // config directory, as `mise run backend:deps:oci-token` writes it,
    // whatever the working directory.
    let checkout = support::checkout_with_pki();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(elsewhere.path())
        .arg("--config-dir")
        .arg(checkout.path().join("config"))
        .args(["--run-mode", "oci-token", "config", "--check"])
        .env_clear()
        .env("RISE_JWT_SECRET", "a-local-secret-of-enough-length-0123456")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_realm_rate_limits_each_ticket_holder_on_its_own() {
    let s = setup().await;
    let (alice, _) = s.credentials("alice", "my-app").await;
    let (bob, _) = s.credentials("bob", "other-app").await;
    let ask = |login: &str| {
        let url = s.realm("scope=repository:rise-apps/my-app:pull");
        let auth = basic(login);
        async move { send(Method::GET, &url, &[("authorization", &auth)], "").await }
    };
    // The default burst is 20.
    for i in 0..20 {
        assert_eq!(ask(&alice).await.status, 200, "request {i}");
    }
    let limited = ask(&alice).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(ask(&bob).await.status, 200, "bob has his own bucket");
    // Alice's credential requests are counted apart from her token requests.
    let (again, _) = s.credentials("alice", "my-app").await;
    assert!(again.starts_with("rise:"));
}

/// Access is decided again at every exchange, from the identities the
/// ticket carries and the config the replica runs now: a ticket issued
/// while its holder had access stops yielding registry tokens as soon as
/// that access is gone, long before the ticket expires. No registry is
/// needed: only the realm's answer is in question.
#[tokio::test(flavor = "multi_thread")]
async fn revoking_access_stops_new_registry_tokens_at_once() {
    let pki = tempfile::tempdir().unwrap();
    dev_ca(pki.path());
    let registry = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let after = serve_config(registry, pki.path());
    let before = after.replace(
        r#"access: ["user:alice"]"#,
        r#"access: ["user:alice", "group:builders"]"#,
    );
    assert_ne!(before, after);
    let ticket_of = |server: &TestServer, sub: &str, groups: &[&str]| {
        let url = server.url("/registry/credentials?project=my-app");
        let token = hs256(SECRET, &claims(sub, None, groups));
        async move {
            let reply = get(&url, Some(&token)).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let password = reply.json()["credentials"]["password"].clone();
            format!("rise:{}", password.as_str().unwrap())
        }
    };
    let exchange = |server: &TestServer, login: &str| {
        let url = server.url("/registry/token?scope=repository:rise-apps/my-app:pull,push");
        let auth = basic(login);
        async move { send(Method::GET, &url, &[("authorization", &auth)], "").await }
    };

    let old = TestServer::start(&before).await;
    // carol has access through a group; the ticket keeps only the groups
    // the config names for the project.
    let carol = ticket_of(&old, "carol", &["builders", "unrelated"]).await;
    let alice = ticket_of(&old, "alice", &[]).await;
    let payload = carol.split('.').nth(2).unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(payload["grp"], json!(["builders"]), "{payload}");
    assert_eq!(exchange(&old, &carol).await.status, 200);

    // A replica with the group's access removed (same key, so the ticket
    // itself still verifies).
    let new = TestServer::start(&after).await;
    let reply = exchange(&new, &carol).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "invalid_ticket");
    assert!(
        reply.body.contains("no longer has access"),
        "{}",
        reply.body
    );
    let line = new.audit_matching(|l| l["audit"] == "token");
    assert_eq!(line[0]["subject"], "carol");
    assert_eq!(line[0]["reason"], "not_permitted");
    // alice's own access is unchanged: her ticket from the old replica works.
    assert_eq!(exchange(&new, &alice).await.status, 200);
    // And the old replica, still on the old config, still honours carol's.
    assert_eq!(exchange(&old, &carol).await.status, 200);
}

/// A ticket is bound to the issuer that verified its holder's token: once
/// a reload rotates `hs256_secret` (or points the issuer elsewhere), the
/// tickets minted under the old one stop exchanging at once, like the
/// tokens themselves, and a ticket minted under the new one works.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_ends_the_tickets_minted_under_it() {
    let s = setup().await;
    let scope = "scope=repository:rise-apps/my-app:pull,push";
    let exchange = |login: String| {
        let url = s.realm(scope);
        async move { send(Method::GET, &url, &[("authorization", &basic(&login))], "").await }
    };
    let (before, _) = s.credentials("alice", "my-app").await;
    assert_eq!(exchange(before.clone()).await.status, 200);
    // The ticket carries the issuer's fingerprint keyed with the ticket
    // key, never the fingerprint itself (a hash of the shared secret).
    let payload = before.split('.').nth(2).unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let fingerprint = s.issuer_key();
    assert_eq!(payload["ik"].as_str().map(str::len), Some(32), "{payload}");
    assert_ne!(payload["ik"], fingerprint.as_str());

    let rotated = "rotated-secret-rotated-secret-rotated-0001";
    let text = format!(
        "{}{}",
        registry_block(s.registry.addr, s.pki.path()),
        access().replace(SECRET, rotated)
    );
    let config = support::load_config(&[("default.yaml", &text)], &[]).unwrap();
    s.serve.app.reload(config).await.unwrap();

    let reply = exchange(before).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "invalid_ticket");
    let token = hs256(rotated, &claims("alice", None, &[]));
    let (after, _) = s.login(&token, "project=my-app").await;
    assert_eq!(exchange(after).await.status, 200);
}
