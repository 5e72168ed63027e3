//! The credential API's status and header matrix, as unit tests of
//! [`App::handle`]: which method, path, query and header gives which
//! status, body and headers, and which audit line. Requests are built with
//! `hyper::Request` and handed to the handler directly, with no socket in
//! between; what needs a connection (header limits, TLS, shutdown) is
//! tested in `tests/serve.rs`.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};

use super::{App, Surface};
use crate::auth::Authenticator;
use crate::clock::unix_now;
use crate::config::{Source, load_sources};
use crate::registry::RegistryProvider;

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

/// An [`App`] for `config` and the audit lines it writes.
struct TestApp {
    app: App,
    audit: Arc<Mutex<Vec<String>>>,
}

impl TestApp {
    async fn new(config: &str) -> Self {
        let sources = [Source {
            file: Arc::from("default.yaml"),
            text: config.to_string(),
        }];
        let config = load_sources(&sources, &Arc::from("config"), &|_| None)
            .unwrap_or_else(|e| panic!("the test config does not load:\n{e}"));
        let auth = Authenticator::new(&config.auth).await.unwrap();
        let provider = RegistryProvider::new(&config.registry).await.unwrap();
        let audit: Arc<Mutex<Vec<String>>> = Arc::default();
        let lines = audit.clone();
        let sink = Box::new(move |line: &str| lines.lock().unwrap().push(line.to_string()));
        Self {
            app: App::new(config, auth, provider, sink),
            audit,
        }
    }

    /// The audit lines, parsed; there must be exactly `expected`.
    fn audit(&self, expected: usize) -> Vec<Value> {
        let lines = self.audit.lock().unwrap();
        assert_eq!(lines.len(), expected, "audit lines:\n{}", lines.join("\n"));
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn request(&self, method: Method, uri: &str, bearer: Option<&str>) -> Reply {
        self.request_on(Surface::Api, method, uri, bearer).await
    }

    async fn request_on(
        &self,
        surface: Surface,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .app
            .handle_on(surface, req.body(Empty::<Bytes>::new()).unwrap())
            .await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, uri: &str, bearer: Option<&str>) -> Reply {
        self.request(Method::GET, uri, bearer).await
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn creds(project: &str) -> String {
    format!("/registry/credentials?project={project}")
}

/// Standard claims for `sub`, valid for five minutes.
fn claims(sub: &str, email: Option<&str>, groups: &[&str]) -> Value {
    let now = unix_now();
    let mut c = json!({"sub": sub, "exp": now + 300, "iat": now, "groups": groups});
    if let Some(email) = email {
        c["email"] = json!(email);
        c["email_verified"] = json!(true);
    }
    c
}

fn with_iss_aud(mut c: Value) -> Value {
    c["iss"] = json!("test-issuer");
    c["aud"] = json!("rise");
    c
}

/// An HS256 JWT of `header` and `claims`, signed with `secret`.
fn sign(secret: &str, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

fn hs256(secret: &str, claims: &Value) -> String {
    sign(secret, &json!({"alg": "HS256", "typ": "JWT"}), claims)
}

/// A valid HS256 token for the config's issuer and audience.
fn token(sub: &str, email: Option<&str>, groups: &[&str]) -> String {
    hs256(SECRET, &with_iss_aud(claims(sub, email, groups)))
}

/// Captures what the handler logs on this thread while the guard lives.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
    let writer = Captured(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn errors_are_json_with_the_right_status_and_headers() {
    let (logs, _guard) = capture_logs();
    let serve = TestApp::new(&oci_config("")).await;
    let alice = token("u-alice", Some("alice@example.com"), &[]);

    // Invalid project names are refused before the token is even looked at.
    let long = "a".repeat(300);
    for bad in [
        "My-App", "my-app*", "*", "a%2Fb", "my%2Dapp", "..", "../x", "a/b", "", &long,
    ] {
        let reply = serve.get(&creds(bad), None).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "invalid_project");
    }
    let reply = serve.get("/registry/credentials", Some(&alice)).await;
    assert_eq!(reply.status, 400);

    // Missing, malformed, forged and expired tokens.
    let reply = serve.get(&creds("my-app"), None).await;
    assert_eq!(
        (
            reply.status.as_u16(),
            reply.json()["error"]["code"].as_str()
        ),
        (401, Some("missing_token"))
    );
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let forged = hs256(
        "another-secret-another-secret-another",
        &with_iss_aud(claims("u", None, &[])),
    );
    let mut expired = with_iss_aud(claims("u-alice", Some("alice@example.com"), &[]));
    expired["exp"] = json!(unix_now() - 120);
    let no_iss = hs256(SECRET, &claims("u-alice", Some("alice@example.com"), &[]));
    let mut wrong_aud = with_iss_aud(claims("u-alice", Some("alice@example.com"), &[]));
    wrong_aud["aud"] = json!("someone-else");
    let mut future = with_iss_aud(claims("u-alice", Some("alice@example.com"), &[]));
    future["nbf"] = json!(unix_now() + 600);
    let good = token("u-alice", Some("alice@example.com"), &[]);
    let payload = good.split('.').nth(1).unwrap();
    // {"alg":"none"} with the good payload and no signature.
    let alg_none = format!("eyJhbGciOiJub25lIn0.{payload}.");
    // An RS256 header, HMAC-signed with the shared secret: HS/RS confusion.
    let confused = sign(
        SECRET,
        &json!({"alg": "RS256", "typ": "JWT"}),
        &with_iss_aud(claims("u-alice", Some("alice@example.com"), &[])),
    );
    for (bad, why) in [
        ("not-a-jwt".to_string(), "malformed"),
        (format!("{good}x.y"), "malformed"),
        (forged, "signature"),
        (hs256(SECRET, &expired), "expired"),
        (hs256(SECRET, &future), "not valid yet"),
        (no_iss, "issuer"),
        (hs256(SECRET, &wrong_aud), "audience"),
        (alg_none, "malformed"),
        (confused, "signing key is unknown"),
    ] {
        let reply = serve.get(&creds("my-app"), Some(&bad)).await;
        assert_eq!(reply.status, 401, "{why}");
        assert_eq!(reply.json()["error"]["code"], "invalid_token");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(why),
            "{why}: {}",
            reply.body
        );
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .contains("invalid_token")
        );
    }

    // Unknown and forbidden projects look the same.
    let unknown = serve.get(&creds("nope"), Some(&alice)).await;
    let forbidden = serve.get(&creds("other"), Some(&alice)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(forbidden.status, 404);
    assert_eq!(unknown.body, forbidden.body);
    let outcomes: Vec<Value> = serve
        .audit(23)
        .iter()
        .map(|l| l["outcome"].clone())
        .collect();
    assert!(
        outcomes.contains(&json!("unknown_project")) && outcomes.contains(&json!("not_permitted")),
        "{outcomes:?}"
    );

    // Methods and routes.
    let reply = serve
        .request(Method::POST, &creds("my-app"), Some(&alice))
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET"));
    let reply = serve.get("/nope", None).await;
    assert_eq!(
        (
            reply.status.as_u16(),
            reply.json()["error"]["code"].as_str()
        ),
        (404, Some("not_found"))
    );
    // The token realm exists only for `oci-token` registries.
    let reply = serve.get("/registry/token?service=x", None).await;
    assert_eq!(
        (
            reply.status.as_u16(),
            reply.json()["error"]["code"].as_str()
        ),
        (404, Some("not_found"))
    );

    // No secret in any audit line or log.
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let everything = format!("{:?}{logs}", serve.audit(24));
    assert!(!everything.contains(SECRET) && !everything.contains(&alice));
}

#[tokio::test]
async fn access_by_group_and_admin() {
    let serve = TestApp::new(&oci_config("")).await;
    let team = token("u-2", None, &["team-a"]);
    assert_eq!(serve.get(&creds("my-app"), Some(&team)).await.status, 200);
    assert_eq!(serve.get(&creds("other"), Some(&team)).await.status, 404);
    let admin = token("u-3", None, &["platform"]);
    assert_eq!(serve.get(&creds("other"), Some(&admin)).await.status, 200);
    assert_eq!(
        serve.audit(3).last().unwrap()["grant"],
        "admin via group:platform"
    );
}

#[tokio::test]
async fn each_caller_has_its_own_rate_limit() {
    let serve = TestApp::new(&oci_config(
        "server:\n  rate_limit: {requests_per_minute: 6, burst: 3}\n",
    ))
    .await;
    let alice = token("u-alice", Some("alice@example.com"), &[]);
    for _ in 0..3 {
        assert_eq!(serve.get(&creds("my-app"), Some(&alice)).await.status, 200);
    }
    let limited = serve.get(&creds("my-app"), Some(&alice)).await;
    assert_eq!(limited.status, 429);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    let team = token("u-2", None, &["team-a"]);
    assert_eq!(
        serve.get(&creds("my-app"), Some(&team)).await.status,
        200,
        "others are unaffected"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let serve = TestApp::new(&oci_config("")).await;
    assert_eq!(
        serve.get("/healthz", None).await.json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        serve.get("/readyz", None).await.json(),
        json!({"status": "ready", "provider": "ok"})
    );
    let alice = token("u-alice", Some("alice@example.com"), &[]);
    serve.get(&creds("my-app"), Some(&alice)).await;
    serve.get(&creds("my-app"), None).await;
    let metrics = serve.get("/metrics", None).await;
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    for line in [
        "rise_registry_http_requests_total{route=\"credentials\",status=\"200\"} 1",
        "rise_registry_http_requests_total{route=\"credentials\",status=\"401\"} 1",
        "rise_registry_credential_requests_total{access=\"push\",provider=\"oci-client-auth\",outcome=\"unauthenticated\"} 1",
        "rise_registry_credential_requests_total{access=\"push\",provider=\"oci-client-auth\",outcome=\"issued\"} 1",
        "rise_registry_credential_cache_entries 0",
    ] {
        assert!(
            metrics.body.contains(line),
            "missing {line}:\n{}",
            metrics.body
        );
    }
    assert!(
        !metrics.body.contains("project="),
        "no project label by default:\n{}",
        metrics.body
    );
}

/// `server.metrics_project_labels: true` counts credential requests per
/// project, once the caller is authorised for it.
#[tokio::test]
async fn project_labels_in_metrics_are_asked_for() {
    let serve = TestApp::new(&oci_config("server: {metrics_project_labels: true}")).await;
    let alice = token("u-alice", Some("alice@example.com"), &[]);
    serve.get(&creds("my-app"), Some(&alice)).await;
    serve.get(&creds("my-app"), None).await;
    let metrics = serve.get("/metrics", None).await;
    for line in [
        "rise_registry_credential_requests_total{project=\"-\",access=\"push\",provider=\"oci-client-auth\",outcome=\"unauthenticated\"} 1",
        "rise_registry_credential_requests_total{project=\"my-app\",access=\"push\",provider=\"oci-client-auth\",outcome=\"issued\"} 1",
    ] {
        assert!(
            metrics.body.contains(line),
            "missing {line}:\n{}",
            metrics.body
        );
    }
}

/// What a caller without access can observe (status, headers, body, and
/// `/metrics` should it be readable) is the same whether the project it
/// names exists or not: without a token, and with a token that is not
/// allowed on the project. Each pair runs on two fresh apps, so the whole
/// metrics text can be compared.
#[tokio::test]
async fn nothing_about_projects_is_learned_without_access() {
    let alice = token("u-alice", Some("alice@example.com"), &[]);
    // (configured project, unknown project, token): no token at all, a
    // token that does not verify, and a valid token without access.
    let cases = [
        ("my-app", "nope", None),
        ("my-app", "nope", Some("not-a-token")),
        ("other", "nope", Some(alice.as_str())),
    ];
    for (configured, unknown, bearer) in cases {
        // With project labels, the form in which metrics could tell most.
        let labelled = oci_config("server: {metrics_project_labels: true}");
        let (a, b) = (TestApp::new(&labelled).await, TestApp::new(&labelled).await);
        let known = a.get(&creds(configured), bearer).await;
        let absent = b.get(&creds(unknown), bearer).await;
        assert_ne!(known.status, StatusCode::OK);
        assert_eq!(known.status, absent.status, "{bearer:?}");
        assert_eq!(known.body, absent.body, "{bearer:?}");
        let without_id = |h: &HeaderMap| {
            let mut h = h.clone();
            h.remove("x-request-id");
            format!("{h:?}")
        };
        assert_eq!(
            without_id(&known.headers),
            without_id(&absent.headers),
            "{bearer:?}"
        );
        let (ma, mb) = (
            a.get("/metrics", None).await.body,
            b.get("/metrics", None).await.body,
        );
        assert_eq!(ma, mb, "{bearer:?}");
        assert!(!ma.contains(configured), "{ma}");
        // The audit trail, which only operators read, keeps the detail.
        let detail = |app: &TestApp| app.audit(1)[0]["outcome"].clone();
        if bearer == Some(alice.as_str()) {
            assert_eq!(detail(&a), "not_permitted");
            assert_eq!(detail(&b), "unknown_project");
            assert!(
                ma.contains("{project=\"-\",access=\"push\",provider=\"oci-client-auth\",outcome=\"not_found\"} 1"),
                "{ma}"
            );
        }
    }
}

/// With `server.metrics_listen`, metrics are served on that listener only,
/// and it answers health and metrics but never the API.
#[tokio::test]
async fn a_metrics_listener_of_its_own_takes_metrics_off_the_api() {
    let serve = TestApp::new(&oci_config("server: {metrics_listen: \"127.0.0.1:9464\"}")).await;
    let alice = token("u-alice", Some("alice@example.com"), &[]);
    assert_eq!(serve.get(&creds("my-app"), Some(&alice)).await.status, 200);
    let on_api = serve.get("/metrics", None).await;
    assert_eq!(on_api.status, 404);
    assert_eq!(on_api.json()["error"]["code"], "not_found");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(serve.get(path, None).await.status, 200, "{path}");
        let ops = serve
            .request_on(Surface::Ops, Method::GET, path, None)
            .await;
        assert_eq!(ops.status, 200, "{path}");
    }
    let ops = serve
        .request_on(Surface::Ops, Method::GET, "/metrics", None)
        .await;
    assert_eq!(ops.status, 200);
    assert!(ops.body.contains("outcome=\"issued\"} 1"), "{}", ops.body);
    for path in ["/registry/credentials?project=my-app", "/registry/token"] {
        let reply = serve
            .request_on(Surface::Ops, Method::GET, path, Some(&alice))
            .await;
        assert_eq!(reply.status, 404, "{path}");
    }
    // Without the key, both are on the one listener, as before.
    let plain = TestApp::new(&oci_config("")).await;
    assert_eq!(plain.get("/metrics", None).await.status, 200);
}
