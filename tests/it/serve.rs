//! serve end to end over TCP with a real HTTP client: in this process
//! ([`TestServer`]) for request and connection behaviour, as the built
//! binary ([`Serve`]) for what only the process shows: SIGTERM, TLS from
//! config, the `token` command. The status and header matrix of the API is
//! unit-tested on the handler (`src/serve/handler_tests.rs`).

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::http::get;
use support::in_process::TestServer;
use support::jwt::{self, TestKey, claims, hs256};
use support::server::{JwksServer, Serve};

const SECRET: &str = "serve-test-secret-serve-test-secret-0123";

fn oci_config(extra: &str) -> String {
    format!(
        r#"
registry: {{type: oci-client-auth, registry_url: "localhost:5000", namespace: rise-apps}}
projects:
  - {{name: my-app, access: ["user:alice@example.com", "group:team-a"]}}
  - {{name: other, access: ["user:bob"]}}
auth:
  issuer: test-issuer
  audience: rise
  hs256_secret: {SECRET}
  admins: ["group:platform"]
{extra}"#
    )
}

/// A valid HS256 token for the OCI config's issuer and audience.
fn token(sub: &str, email: Option<&str>, groups: &[&str]) -> String {
    hs256(SECRET, &with_iss_aud(claims(sub, email, groups)))
}

fn with_iss_aud(mut c: Value) -> Value {
    c["iss"] = json!("test-issuer");
    c["aud"] = json!("rise");
    c
}

fn creds_url(serve: &TestServer, project: &str) -> String {
    serve.url(&format!("/registry/credentials?project={project}"))
}

#[tokio::test]
async fn oci_client_auth_returns_the_registry_and_image_path() {
    let serve = TestServer::start(&oci_config("")).await;
    let alice = token("u-alice", Some("alice@example.com"), &[]);
    let reply = get(&creds_url(&serve, "my-app"), Some(&alice)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.json(),
        json!({"credentials": {"registry_url": "localhost:5000", "username": "", "password": ""},
               "repository": "my-app", "image": "localhost:5000/rise-apps/my-app"})
    );
    let audit = serve.audit(1);
    let line = audit.last().expect("an audit line");
    assert_eq!(line["outcome"], "issued");
    assert_eq!(line["project"], "my-app");
    assert_eq!(
        line["caller"],
        json!(["user:u-alice", "user:alice@example.com"])
    );
    assert_eq!(line["grant"], "access via user:alice@example.com");
    assert_eq!(line["request_id"], reply.header("x-request-id").unwrap());
}

/// A caller's `X-Request-Id` is kept in its own audit field; the request
/// id in the response and the audit line is always the server's, so one
/// caller cannot make its requests pass for another's in the audit trail.
#[tokio::test]
async fn a_callers_request_id_is_recorded_beside_ours_never_as_ours() {
    let serve = TestServer::start(&oci_config("")).await;
    let alice = format!(
        "Bearer {}",
        token("u-alice", Some("alice@example.com"), &[])
    );
    let url = creds_url(&serve, "my-app");
    let headers = [
        ("authorization", alice.as_str()),
        ("x-request-id", "victim-id"),
    ];
    let first = support::http::send(hyper::Method::GET, &url, &headers, "").await;
    let second = support::http::send(hyper::Method::GET, &url, &headers, "").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let (a, b) = (
        first.header("x-request-id").unwrap(),
        second.header("x-request-id").unwrap(),
    );
    assert_ne!(a, "victim-id");
    assert_ne!(a, b, "each request gets its own id");
    let audit = serve.audit(2);
    assert_eq!(audit[0]["request_id"], a);
    assert_eq!(audit[0]["caller_request_id"], "victim-id");
    // An id that is not short and plain is left out, not escaped in.
    let odd = [("authorization", alice.as_str()), ("x-request-id", "a\"b")];
    support::http::send(hyper::Method::GET, &url, &odd, "").await;
    assert_eq!(
        serve.audit(3)[2]["caller_request_id"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn jwks_keys_verify_es256_and_rs256_and_rotation_is_picked_up() {
    let (es, rs) = (TestKey::es256("es-1"), TestKey::rs256("rs-1"));
    let jwks = JwksServer::start(jwt::jwks(&[&es, &rs]));
    let config = format!(
        r#"
registry: {{type: oci-client-auth, registry_url: "localhost:5000"}}
projects: [{{name: my-app, access: ["group:team-a"]}}]
auth: {{jwks_url: "{}", issuer: test-issuer, audience: rise, jwks_min_refresh_seconds: 2}}
"#,
        jwks.url
    );
    let serve = TestServer::start(&config).await;
    let c = || with_iss_aud(claims("u", None, &["team-a"]));
    for key in [&es, &rs] {
        let reply = get(&creds_url(&serve, "my-app"), Some(&key.sign(&c()))).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // No shared secret is configured: an HS256 token is refused outright.
    let hs = hs256(SECRET, &c());
    assert_eq!(
        get(&creds_url(&serve, "my-app"), Some(&hs)).await.status,
        401
    );

    // The identity provider rotates to a new key: once the minimum refresh
    // interval has passed, the unknown kid triggers one refresh and the
    // token is accepted. The interval passes on paused time; the requests
    // run on real time again, as the JWKS server is another thread.
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(2100)).await;
    tokio::time::resume();
    let fetched = jwks.fetches.load(std::sync::atomic::Ordering::SeqCst);
    let rotated = TestKey::es256("es-2");
    jwks.set(jwt::jwks(&[&rotated]));
    let reply = get(&creds_url(&serve, "my-app"), Some(&rotated.sign(&c()))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        fetched + 1
    );

    // A flood of unknown kids does not hammer the JWKS endpoint.
    for i in 0..5 {
        let stranger = TestKey::es256(&format!("unknown-{i}"));
        let reply = get(&creds_url(&serve, "my-app"), Some(&stranger.sign(&c()))).await;
        assert_eq!(reply.status, 401);
    }
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        fetched + 1
    );
}

#[tokio::test]
async fn sigterm_finishes_and_exits_zero() {
    let mut serve = Serve::start(&oci_config(""), &[]);
    // An idle keep-alive connection must not hold shutdown up.
    let idle = std::net::TcpStream::connect(serve.addr).unwrap();
    let status = serve.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}: {}", serve.logs());
    assert!(
        std::net::TcpStream::connect(serve.addr).is_err(),
        "the listener is closed"
    );
    drop(idle);
}

/// The binary with `server.metrics_listen`: a second listener with health
/// and metrics, the API listener without metrics, one SIGTERM for both.
#[tokio::test]
async fn the_metrics_listener_serves_health_and_metrics_and_stops_with_serve() {
    let ops = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut serve = Serve::start(
        &oci_config(&format!("server:\n  metrics_listen: \"{ops}\"\n")),
        &[],
    );
    let ops_url = |path: &str| format!("http://{ops}{path}");
    assert_eq!(get(&ops_url("/healthz"), None).await.status, 200);
    assert_eq!(get(&ops_url("/readyz"), None).await.status, 200);
    let metrics = get(&ops_url("/metrics"), None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("rise_registry_connections_open"));
    assert_eq!(get(&serve.url("/metrics"), None).await.status, 404);
    assert_eq!(get(&serve.url("/healthz"), None).await.status, 200);
    assert_eq!(
        get(&ops_url("/registry/credentials?project=my-app"), None)
            .await
            .status,
        404
    );
    let status = serve.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status}: {}", serve.logs());
    assert!(
        std::net::TcpStream::connect(ops).is_err(),
        "the metrics listener is closed too"
    );
}

/// Blocking sockets in the test body: the server's tasks run on the other
/// worker threads meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_slow_headers_are_refused() {
    use std::io::{Read, Write};
    let serve = TestServer::start(&oci_config("server:\n  header_read_timeout_seconds: 1\n")).await;
    // Huge headers (just over the 16 KiB limit, in one write): 431 and the
    // connection closes. The server may stop reading and close while the
    // client is still writing; then the write fails and the answer may be
    // lost to the reset, which is a refusal too, but never a 200.
    let mut huge = std::net::TcpStream::connect(serve.addr).unwrap();
    let padding = "x".repeat(17 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: {padding}\r\n\r\n");
    let written = huge.write_all(request.as_bytes());
    let mut answer = Vec::new();
    huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = huge.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431") || (written.is_err() && answer.is_empty()),
        "{answer:.80}"
    );
    // Slowloris: half a request line, then nothing; the server hangs up.
    let mut slow = std::net::TcpStream::connect(serve.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after the header timeout"
    );
    // Meanwhile everyone else is served.
    assert_eq!(get(&serve.url("/healthz"), None).await.status, 200);
}

#[tokio::test]
async fn tls_from_server_tls_serves_https_only() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use std::sync::Arc;

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let extra = format!(
        "server:\n  tls: {{cert_file: '{}', key_file: '{}'}}\n",
        cert_file.display(),
        key_file.display()
    );
    let serve = Serve::start(&oci_config(&extra), &[]);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<bytes::Bytes>>(connector);
    let url = format!("https://localhost:{}/healthz", serve.addr.port());
    let response = client
        .get(url.parse().unwrap())
        .await
        .expect("HTTPS request");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"status":"ok"}"#);

    // Plain HTTP on the TLS port gets no HTTP answer.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(serve.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "served plain HTTP over the TLS port"
    );
}

#[tokio::test]
async fn the_token_command_mints_what_serve_accepts() {
    let serve = TestServer::start(&oci_config("")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.yaml"), oci_config("")).unwrap();
    let minted = std::process::Command::new(support::server::BIN)
        .args([
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--run-mode",
            "default",
            "token",
            "--sub",
            "u-9",
            "--group",
            "team-a",
            "--ttl",
            "60",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap();
    let reply = get(&creds_url(&serve, "my-app"), Some(token.trim())).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        serve.audit(1).last().unwrap()["caller"],
        json!(["user:u-9", "group:team-a"])
    );
}

#[test]
fn docker_compose_runs_the_registry_and_ui_the_docs_promise() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let services = &compose["services"];
    assert_eq!(services["registry"]["image"], "registry:2");
    assert_eq!(services["registry"]["ports"][0], "5000:5000");
    assert_eq!(
        services["registry"]["volumes"][0],
        "registry_data:/var/lib/registry"
    );
    assert_eq!(services["registry-ui"]["ports"][0], "5001:80");
    assert!(compose["volumes"].get("registry_data").is_some());
    let mise = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/mise.toml")).unwrap();
    assert!(
        mise.contains("[tasks.\"backend:deps\"]")
            && mise.contains("docker compose up -d registry registry-ui")
    );

    // The token-auth registry agrees with the oci-token run mode.
    let token = &services["registry-token"];
    let env = &token["environment"];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let layers: Vec<(String, String)> = ["default.yaml", "oci-token.yaml"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read_to_string(format!("{dir}/{f}")).unwrap(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = layers
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    // The oci-token run mode signs with the operator's RISE_JWT_SECRET.
    let secret = [("RISE_JWT_SECRET", "a-local-secret-of-enough-length-0123456")];
    let config = support::load_config(&refs, &secret).unwrap();
    let rise_registry::config::RegistryConfig::OciToken(oci) = config.registry else {
        panic!("config/oci-token.yaml is oci-token");
    };
    assert_eq!(env["REGISTRY_AUTH"], "token");
    assert_eq!(env["REGISTRY_AUTH_TOKEN_SERVICE"], oci.service.as_str());
    assert_eq!(env["REGISTRY_AUTH_TOKEN_ISSUER"], oci.issuer.as_str());
    let port = oci.registry_url.as_str().rsplit(':').next().unwrap();
    assert_eq!(token["ports"][0], format!("{port}:5000"));
    assert_eq!(
        env["REGISTRY_AUTH_TOKEN_REALM"],
        format!(
            "http://localhost:{}/registry/token",
            config.server.listen.port()
        )
    );
    assert_eq!(token["profiles"][0], "oci-token");
    assert!(mise.contains("docker compose --profile oci-token up -d registry-token"));
}
