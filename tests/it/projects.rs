//! The project store and the projects API against the real things: serve
//! as the built binary on loopback, with an embedded SQLite file or a
//! PostgreSQL server of the test's own (Debian's `postgresql-15`), and a
//! real HTTP client. Two replicas on one PostgreSQL see each other's
//! changes; a PostgreSQL that stops takes nothing from credential requests.

use crate::support;

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use support::http::{Reply, send};
use support::jwt::{claims, hs256};
use support::postgres::Postgres;
use support::server::Serve;

const SECRET: &str = "projects-test-secret-projects-test-0123";

/// An oci-client-auth config with one config project, the platform
/// backend as a project manager, and `store_url`.
fn config(store_url: &str) -> String {
    format!(
        r#"
registry: {{type: oci-client-auth, registry_url: "localhost:5000", namespace: rise-apps}}
projects:
  - {{name: declared, access: ["user:carol"]}}
auth:
  issuer: test-issuer
  audience: rise
  hs256_secret: {SECRET}
  admins: ["group:platform"]
  project_managers: ["user:rise-backend"]
server: {{rate_limit: {{requests_per_minute: 100000, burst: 1000}}}}
store:
  url: "{store_url}"
"#
    )
}

fn token(sub: &str, groups: &[&str]) -> String {
    let mut c = claims(sub, None, groups);
    c["iss"] = json!("test-issuer");
    c["aud"] = json!("rise");
    hs256(SECRET, &c)
}

fn manager() -> String {
    token("rise-backend", &[])
}

async fn call(
    serve: &Serve,
    method: Method,
    path: &str,
    bearer: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let auth = format!("Bearer {bearer}");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    if !body.is_empty() {
        all.push(("content-type", "application/json"));
    }
    send(method, &serve.url(path), &all, body).await
}

async fn put(serve: &Serve, name: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    call(
        serve,
        Method::PUT,
        &format!("/registry/projects/{name}"),
        &manager(),
        headers,
        &body.to_string(),
    )
    .await
}

async fn credentials(serve: &Serve, project: &str, bearer: &str) -> Reply {
    call(
        serve,
        Method::GET,
        &format!("/registry/credentials?project={project}"),
        bearer,
        &[],
        "",
    )
    .await
}

/// Polls `f` until it holds or `within` passes; how long it took.
async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sqlite_serve() -> (Serve, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", data.path().join("store.db").display());
    (Serve::start(&config(&url), &[]), data)
}

#[tokio::test]
async fn a_project_made_through_the_api_gets_credentials_and_stops_on_delete() {
    let (serve, _data) = sqlite_serve();
    let dave = token("dave", &[]);
    // Unknown before it is made, like any project.
    assert_eq!(credentials(&serve, "web-shop", &dave).await.status, 404);

    let created = put(&serve, "web-shop", &json!({"access": ["user:dave"]}), &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let etag = created.header("etag").expect("an ETag").to_string();
    let body = created.json();
    assert_eq!(body["name"], "web-shop");
    assert_eq!(body["source"], "store");
    assert_eq!(body["access"], json!(["user:dave"]));
    assert_eq!(body["pull_access"], json!([]));
    assert_eq!(body["repository"]["name"], "rise-apps/web-shop");
    assert_eq!(body["repository"]["state"], "pending");

    let reply = credentials(&serve, "web-shop", &dave).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["image"], "localhost:5000/rise-apps/web-shop");
    assert_eq!(
        credentials(&serve, "web-shop", &token("eve", &[]))
            .await
            .status,
        404
    );

    // The same body again is an update, with a new ETag.
    let updated = put(
        &serve,
        "web-shop",
        &json!({"access": ["user:dave", "user:eve"]}),
        &[],
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let etag2 = updated.header("etag").unwrap().to_string();
    assert_ne!(etag, etag2);
    assert_eq!(
        credentials(&serve, "web-shop", &token("eve", &[]))
            .await
            .status,
        200
    );

    // A write on the old version is refused and changes nothing.
    let stale = put(
        &serve,
        "web-shop",
        &json!({"access": []}),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(stale.json()["error"]["code"], "precondition_failed");
    assert_eq!(stale.json()["error"]["current_etag"], etag2.as_str());
    assert_eq!(credentials(&serve, "web-shop", &dave).await.status, 200);

    let got = call(
        &serve,
        Method::GET,
        "/registry/projects/web-shop",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), Some(etag2.as_str()));

    let deleted = call(
        &serve,
        Method::DELETE,
        "/registry/projects/web-shop",
        &manager(),
        &[("if-match", &etag2)],
        "",
    )
    .await;
    assert_eq!(deleted.status, 202, "{}", deleted.body);
    assert_eq!(deleted.json()["repository"]["state"], "deleting");
    // Credentials stop at once.
    assert_eq!(credentials(&serve, "web-shop", &dave).await.status, 404);
    // And the project cannot change until it is gone.
    let again = put(&serve, "web-shop", &json!({"access": ["user:dave"]}), &[]).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["error"]["code"], "project_deleting");

    // Every write is an audit line: who, what, before and after (written
    // out in batches, so wait for the last).
    eventually(
        Duration::from_secs(5),
        "five audit lines of changes",
        || async {
            serve
                .audit_lines()
                .iter()
                .filter(|l| l["audit"] == "project")
                .count()
                == 5
        },
    )
    .await;
    let audit = serve.audit_lines();
    let changes: Vec<&Value> = audit.iter().filter(|l| l["audit"] == "project").collect();
    let outcomes: Vec<&str> = changes
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "created",
            "updated",
            "precondition_failed",
            "deleting",
            "conflict"
        ]
    );
    assert_eq!(changes[1]["caller"], json!(["user:rise-backend"]));
    assert_eq!(changes[1]["before"]["spec"]["access"], json!(["user:dave"]));
    assert_eq!(
        changes[1]["after"]["spec"]["access"],
        json!(["user:dave", "user:eve"])
    );
    assert!(
        serve
            .metric("rise_registry_project_changes_total{op=\"put\",outcome=\"created\"}")
            .eq(&1.0)
    );
}

#[tokio::test]
async fn only_admins_and_project_managers_learn_anything_from_the_api() {
    let (serve, _data) = sqlite_serve();
    assert_eq!(
        put(&serve, "app-one", &json!({"access": ["user:dave"]}), &[])
            .await
            .status,
        201
    );
    let nobody_route = call(
        &serve,
        Method::GET,
        "/registry/nothing-here",
        &manager(),
        &[],
        "",
    )
    .await;
    // A member of the project, but no manager: the API is not there.
    for bearer in [token("dave", &[]), token("carol", &["team-a"])] {
        for (method, path) in [
            (Method::GET, "/registry/projects"),
            (Method::GET, "/registry/projects/app-one"),
            (Method::GET, "/registry/projects/no-such"),
            (Method::DELETE, "/registry/projects/app-one"),
        ] {
            let reply = call(&serve, method.clone(), path, &bearer, &[], "").await;
            assert_eq!(reply.status, 404, "{method} {path}");
            assert_eq!(reply.body, nobody_route.body, "{method} {path}");
        }
    }
    // Without a token: 401, as everywhere.
    let anonymous = send(Method::GET, &serve.url("/registry/projects"), &[], "").await;
    assert_eq!(anonymous.status, 401);
    // The admin group may.
    let admin = token("root", &["platform"]);
    let listed = call(&serve, Method::GET, "/registry/projects", &admin, &[], "").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    let names: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app-one", "declared"]);
    assert!(
        serve
            .audit_lines()
            .iter()
            .all(|l| l["outcome"] != "deleting")
    );
}

#[tokio::test]
async fn bodies_are_checked_as_config_is_and_config_projects_are_read_only() {
    let (serve, _data) = sqlite_serve();
    let reply = put(
        &serve,
        "app-one",
        &json!({"access": ["user:dave", "admin:x", {"issuer": "nowhere", "claims": {"sub": "x"}}],
                "pull_acess": []}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "invalid_project");
    let paths: Vec<&str> = error["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"access[1]"), "{error}");
    assert!(paths.contains(&"access[2].issuer"), "{error}");
    assert!(paths.contains(&"pull_acess"), "{error}");
    let typo = error["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "pull_acess")
        .unwrap();
    assert_eq!(typo["hint"], "did you mean `pull_access`?");

    for (name, status) in [("My-App", 400), ("a..b", 400), ("x%2Fy", 400)] {
        let r = put(&serve, name, &json!({"access": []}), &[]).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
    }
    let not_json = call(
        &serve,
        Method::PUT,
        "/registry/projects/app-two",
        &manager(),
        &[],
        "{\"access\": [",
    )
    .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["error"]["code"], "invalid_request");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let r = call(
        &serve,
        Method::PUT,
        "/registry/projects/app-two",
        &manager(),
        &[],
        &deep,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let huge = format!("{{\"access\": [\"user:{}\"]}}", "a".repeat(1 << 20));
    let r = call(
        &serve,
        Method::PUT,
        "/registry/projects/app-two",
        &manager(),
        &[],
        &huge,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "body_too_large");

    let declared = put(&serve, "declared", &json!({"access": ["user:dave"]}), &[]).await;
    assert_eq!(declared.status, 409, "{}", declared.body);
    assert_eq!(declared.json()["error"]["code"], "declared_in_config");
    let got = call(
        &serve,
        Method::GET,
        "/registry/projects/declared",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(got.json()["source"], "config");
    assert_eq!(got.json()["access"], json!(["user:carol"]));

    // If-None-Match: * creates only.
    let first = put(&serve, "app-three", &json!({}), &[("if-none-match", "*")]).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = put(&serve, "app-three", &json!({}), &[("if-none-match", "*")]).await;
    assert_eq!(second.status, 412);
    let wrong_method = call(
        &serve,
        Method::POST,
        "/registry/projects/app-three",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, PUT, DELETE"));
    // Nothing invalid reached the store.
    let listed = call(
        &serve,
        Method::GET,
        "/registry/projects?limit=1",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(listed.json()["projects"][0]["name"], "app-three");
    assert_eq!(listed.json()["next_cursor"], "app-three");
    let next = call(
        &serve,
        Method::GET,
        "/registry/projects?limit=1&cursor=app-three",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(next.json()["projects"][0]["name"], "declared");
    assert_eq!(next.json()["next_cursor"], Value::Null);
}

#[tokio::test]
async fn projects_survive_a_restart_of_serve_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", data.path().join("store.db").display());
    let mut serve = Serve::start(&config(&url), &[]);
    assert_eq!(
        put(&serve, "kept", &json!({"access": ["user:dave"]}), &[])
            .await
            .status,
        201
    );
    serve.terminate(Duration::from_secs(10));
    let serve = Serve::start(&config(&url), &[]);
    assert_eq!(
        credentials(&serve, "kept", &token("dave", &[]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_change_on_one_replica_gives_credentials_on_the_other() {
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let cfg = config(&pg.url("rise"));
    let (a, b) = (Serve::start(&cfg, &[]), Serve::start(&cfg, &[]));
    let dave = token("dave", &[]);
    assert_eq!(credentials(&b, "shared", &dave).await.status, 404);
    assert_eq!(
        put(&a, "shared", &json!({"access": ["user:dave"]}), &[])
            .await
            .status,
        201
    );
    let took = eventually(
        Duration::from_secs(2),
        "credentials on the other replica",
        || async { credentials(&b, "shared", &dave).await.status == 200 },
    )
    .await;
    eprintln!("PUT on A -> credentials on B: {took:?}");
    let deleted = call(
        &b,
        Method::DELETE,
        "/registry/projects/shared",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(deleted.status, 202);
    eventually(
        Duration::from_secs(2),
        "credentials stop on the first replica",
        || async { credentials(&a, "shared", &dave).await.status == 404 },
    )
    .await;
    // Both replicas migrated one schema, once.
    assert_eq!(
        pg.psql("rise", "SELECT count(*) FROM rise_registry_schema")
            .trim(),
        "1"
    );
}

#[tokio::test]
async fn a_store_that_stops_takes_nothing_from_credentials_and_comes_back() {
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let serve = Serve::start(&config(&pg.url("rise")), &[]);
    let dave = token("dave", &[]);
    assert_eq!(
        put(&serve, "known", &json!({"access": ["user:dave"]}), &[])
            .await
            .status,
        201
    );

    pg.stop();
    // Credentials keep flowing from the last snapshot; the API says 503.
    for _ in 0..20 {
        assert_eq!(credentials(&serve, "known", &dave).await.status, 200);
    }
    let refused = put(&serve, "later", &json!({"access": ["user:dave"]}), &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "store_unavailable");
    assert_eq!(refused.header("retry-after"), Some("5"));
    eventually(
        Duration::from_secs(15),
        "readyz names the store",
        || async {
            let r = call(&serve, Method::GET, "/readyz", &dave, &[], "").await;
            r.status == 200 && r.json()["store"] == "unavailable"
        },
    )
    .await;
    assert_eq!(serve.metric("rise_registry_store_up"), 0.0);
    // Reads say the store is down rather than answer from an old snapshot.
    let read = call(
        &serve,
        Method::GET,
        "/registry/projects/known",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(read.status, 503, "{}", read.body);

    pg.start();
    eventually(Duration::from_secs(30), "the API works again", || async {
        put(&serve, "later", &json!({"access": ["user:dave"]}), &[])
            .await
            .status
            == 201
    })
    .await;
    assert_eq!(credentials(&serve, "later", &dave).await.status, 200);
    assert_eq!(credentials(&serve, "known", &dave).await.status, 200);
    eventually(Duration::from_secs(15), "the store is up again", || async {
        serve.metric("rise_registry_store_up") == 1.0
    })
    .await;
}

#[tokio::test]
async fn concurrent_conditional_writes_leave_a_consistent_store() {
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let cfg = config(&pg.url("rise"));
    let (a, b) = (Serve::start(&cfg, &[]), Serve::start(&cfg, &[]));
    let created = put(&a, "contended", &json!({"access": []}), &[]).await;
    let etag = created.header("etag").unwrap().to_string();
    // 40 writers on two replicas, all with the same If-Match: exactly one
    // may win; every other gets 412.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let serve = if i % 2 == 0 { &a } else { &b };
        let url = serve.url("/registry/projects/contended");
        let etag = etag.clone();
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {}", manager());
            let body = json!({"access": [format!("user:writer-{i}")]}).to_string();
            send(
                Method::PUT,
                &url,
                &[("authorization", &auth), ("if-match", &etag)],
                &body,
            )
            .await
            .status
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        39,
        "{statuses:?}"
    );
    assert_eq!(
        pg.psql(
            "rise",
            "SELECT revision FROM rise_projects WHERE name = 'contended'"
        )
        .trim(),
        "2"
    );
}

#[tokio::test]
async fn a_store_migrated_by_a_newer_release_is_refused() {
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let cfg = config(&pg.url("rise"));
    drop(Serve::start(&cfg, &[]));
    pg.psql(
        "rise",
        "INSERT INTO rise_registry_schema (version, description, applied_at) VALUES (99, 'from the future', 0)",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.yaml"), &cfg).unwrap();
    let out = std::process::Command::new(support::server::BIN)
        .args([
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--run-mode",
            "default",
            "serve",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("schema is version 99"), "{stderr}");
    assert!(
        !stderr.contains("postgres://"),
        "the URL is a secret: {stderr}"
    );
}

/// An ECR config against `emulator` with the controller on, on `store_url`.
fn ecr_controller_config(emulator: &support::Emulator, store_url: &str) -> String {
    format!(
        r#"{}
projects:
  - {{name: my-app, access: ["user:carol"]}}
auth:
  hs256_secret: {SECRET}
  issuer: test-issuer
  audience: rise
  admins: ["group:platform"]
  project_managers: ["user:rise-backend"]
store:
  url: "{store_url}"
controller:
  enabled: true
  lease_seconds: 5
"#,
        emulator.registry_block()
    )
}

fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", support::ADMIN_KEY),
        ("AWS_SECRET_ACCESS_KEY", support::ADMIN_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

async fn state_of(serve: &Serve, name: &str) -> (u16, Value) {
    let r = call(
        serve,
        Method::GET,
        &format!("/registry/projects/{name}"),
        &manager(),
        &[],
        "",
    )
    .await;
    (
        r.status.as_u16(),
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        },
    )
}

async fn repository_tags(
    emulator: &support::Emulator,
    repo: &str,
) -> Option<Vec<(String, String)>> {
    let ecr = aws_sdk_ecr::Client::new(&emulator.admin_config().await);
    let described = ecr
        .describe_repositories()
        .repository_names(repo)
        .send()
        .await
        .ok()?;
    let arn = described.repositories()[0]
        .repository_arn()
        .unwrap()
        .to_string();
    let tags = ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    Some(
        tags.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    )
}

#[tokio::test]
async fn one_leader_makes_and_orphans_repositories_and_another_takes_over_when_it_is_killed() {
    let emulator = support::Emulator::start();
    support::provision(&emulator).await;
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let cfg = ecr_controller_config(&emulator, &pg.url("rise"));
    let env = aws_env();
    let mut replicas = vec![Serve::start(&cfg, &env), Serve::start(&cfg, &env)];
    let leaders = || async {
        replicas
            .iter()
            .map(|r| r.metric("rise_registry_controller_leader"))
            .collect::<Vec<f64>>()
    };
    eventually(Duration::from_secs(10), "one leader", || async {
        let l = leaders().await;
        l.iter().filter(|v| **v == 1.0).count() == 1 && l.iter().sum::<f64>() == 1.0
    })
    .await;

    // PUT on one replica: the repository is made and the project `ready`.
    let dave = token("dave", &[]);
    let created = put(
        &replicas[1],
        "web-shop",
        &json!({"access": ["user:dave"]}),
        &[],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let took = eventually(Duration::from_secs(5), "web-shop ready", || async {
        state_of(&replicas[0], "web-shop").await.1["repository"]["state"] == "ready"
    })
    .await;
    eprintln!("PUT -> ready: {took:?}");
    let tags = repository_tags(&emulator, "rise/web-shop")
        .await
        .expect("the repository exists");
    assert!(
        tags.contains(&("rise:managed".into(), "true".into())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("rise:project".into(), "web-shop".into())),
        "{tags:?}"
    );
    let (_, view) = state_of(&replicas[1], "web-shop").await;
    assert!(view["repository"]["reconciled_at"].is_string(), "{view}");
    eventually(
        Duration::from_secs(2),
        "credentials on both replicas",
        || async {
            credentials(&replicas[0], "web-shop", &dave).await.status == 200
                && credentials(&replicas[1], "web-shop", &dave).await.status == 200
        },
    )
    .await;

    // DELETE: the repository is orphaned, not deleted, and the row goes.
    let deleted = call(
        &replicas[0],
        Method::DELETE,
        "/registry/projects/web-shop",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(deleted.status, 202);
    let took = eventually(Duration::from_secs(5), "web-shop gone", || async {
        state_of(&replicas[1], "web-shop").await.0 == 404
    })
    .await;
    eprintln!("DELETE -> orphaned and gone: {took:?}");
    let tags = repository_tags(&emulator, "rise/web-shop")
        .await
        .expect("orphaned, not deleted");
    assert!(
        tags.contains(&("rise:orphaned".into(), "true".into())),
        "{tags:?}"
    );
    // The config's project was left alone.
    let tags = repository_tags(&emulator, "rise/my-app").await.unwrap();
    assert!(!tags.iter().any(|(k, _)| k == "rise:orphaned"), "{tags:?}");

    // The leader is killed: the other takes over within the lease.
    let l = leaders().await;
    let leader = l.iter().position(|v| *v == 1.0).unwrap();
    replicas[leader].signal("KILL");
    let survivor = replicas.remove(1 - leader);
    let took = eventually(Duration::from_secs(5 + 5), "the survivor leads", || async {
        survivor.metric("rise_registry_controller_leader") == 1.0
    })
    .await;
    eprintln!("leader killed -> survivor leads: {took:?}");
    assert_eq!(
        put(
            &survivor,
            "after-failover",
            &json!({"access": ["user:dave"]}),
            &[]
        )
        .await
        .status,
        201
    );
    eventually(Duration::from_secs(5), "after-failover ready", || async {
        state_of(&survivor, "after-failover").await.1["repository"]["state"] == "ready"
    })
    .await;
    assert!(
        repository_tags(&emulator, "rise/after-failover")
            .await
            .is_some()
    );
    assert!(survivor.metric("rise_registry_controller_passes_total{result=\"ok\"}") >= 1.0);
    // With nothing left to do, the leader waits: its own writes and the
    // periodic reads that find nothing new start no pass.
    let passes = || {
        survivor.metric("rise_registry_controller_passes_total{result=\"ok\"}")
            + survivor.metric("rise_registry_controller_passes_total{result=\"failed\"}")
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = passes();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(passes() - before <= 1.0, "{before} -> {}", passes());
}

#[tokio::test]
async fn an_ecr_project_gets_credentials_only_once_its_repository_is_ready() {
    let emulator = support::Emulator::start();
    support::provision(&emulator).await;
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let cfg = ecr_controller_config(&emulator, &pg.url("rise"));
    let serve = Serve::start(&cfg, &aws_env());
    eventually(Duration::from_secs(10), "it leads at first", || async {
        serve.metric("rise_registry_controller_leader") == 1.0
    })
    .await;
    // Another holder takes the lease for an hour: no pass runs here.
    serve.signal("STOP");
    let far = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(3600))
    .as_millis();
    pg.psql(
        "rise",
        &format!("UPDATE rise_leases SET holder = 'elsewhere', expires_ms = {far}"),
    );
    serve.signal("CONT");
    eventually(Duration::from_secs(10), "no longer the leader", || async {
        serve.metric("rise_registry_controller_leader") == 0.0
    })
    .await;
    assert_eq!(
        put(&serve, "waiting", &json!({"access": ["user:dave"]}), &[])
            .await
            .status,
        201
    );
    let reply = credentials(&serve, "waiting", &token("dave", &[])).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "repository_not_ready");
    assert_eq!(reply.json()["error"]["state"], "pending");
    assert_eq!(reply.header("retry-after"), Some("2"));
    // Only to those the project admits: anyone else learns nothing.
    assert_eq!(
        credentials(&serve, "waiting", &token("eve", &[]))
            .await
            .status,
        404
    );
    // Config projects are not held back.
    assert_eq!(
        credentials(&serve, "my-app", &token("carol", &[]))
            .await
            .status,
        200
    );
}

/// `plan` and `apply` read the store too: a reviewed plan makes the
/// repositories of its projects, orphans those being deleted, and never
/// orphans a repository a project of the store still has.
#[tokio::test]
async fn plan_and_apply_see_the_projects_of_the_store() {
    let emulator = support::Emulator::start();
    support::provision(&emulator).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projects.db");
    let cfg = ecr_controller_config(&emulator, "sqlite:projects.db")
        .replace("controller:\n  enabled: true\n  lease_seconds: 5\n", "");
    std::fs::write(dir.path().join("default.yaml"), &cfg).unwrap();
    let serve = Serve::start_in(dir.path(), "default", &aws_env());
    for name in ["kept", "going"] {
        assert_eq!(
            put(&serve, name, &json!({"access": ["user:dave"]}), &[])
                .await
                .status,
            201
        );
    }
    let plan = |args: &[&str]| {
        let out = support::rise_registry_as_admin(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, err) = plan(&["plan", "--scope", "repositories", "--detailed-exitcode"]);
    assert_eq!(code, Some(2), "{text}{err}");
    assert!(
        text.contains("rise/kept") && text.contains("rise/going"),
        "{text}"
    );
    let (code, text, err) = plan(&["apply", "--auto-approve", "--scope", "repositories"]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(repository_tags(&emulator, "rise/kept").await.is_some());

    // One is deleted through the API: the next plan orphans its
    // repository, and only that one.
    let deleted = call(
        &serve,
        Method::DELETE,
        "/registry/projects/going",
        &manager(),
        &[],
        "",
    )
    .await;
    assert_eq!(deleted.status, 202);
    let (code, text, err) = plan(&["plan", "--scope", "repositories", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let json: Value = serde_json::from_str(&text).unwrap();
    let actions: Vec<String> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap_or("?"),
                a["repository"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(actions, ["orphan rise/going"], "{text}");
    assert!(db.exists());

    // doctor reads the store too: it is reachable, and its projects get
    // the per-project checks.
    let (_, text, err) = plan(&["doctor", "--json"]);
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}{err}"));
    let checks = report["checks"].as_array().unwrap();
    let reachable = checks
        .iter()
        .find(|c| c["id"] == "store.reachable")
        .expect("store.reachable");
    assert_eq!(reachable["outcome"], "pass", "{reachable}");
    assert!(
        checks.iter().any(|c| c["project"] == "kept"),
        "per-project checks for the store's project: {text}"
    );
}

/// A thousand conditional writes at once, on two replicas and fifty
/// projects: every write that succeeded made exactly one new version, the
/// store's revisions count them, and nothing else answered but 2xx, 409
/// and 412.
#[tokio::test]
async fn a_thousand_concurrent_conditional_writes_lose_nothing() {
    let pg = Postgres::start_new();
    pg.create_db("rise");
    let cfg = config(&pg.url("rise"));
    let replicas = std::sync::Arc::new([Serve::start(&cfg, &[]), Serve::start(&cfg, &[])]);
    let projects = 50;
    for p in 0..projects {
        let created = put(
            &replicas[p % 2],
            &format!("c-{p}"),
            &json!({"access": []}),
            &[],
        )
        .await;
        assert_eq!(created.status, 201);
    }
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for op in 0..1000usize {
        let replicas = replicas.clone();
        let in_flight = in_flight.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = in_flight.acquire().await.unwrap();
            let serve = &replicas[op % 2];
            let name = format!("c-{}", op % projects);
            let path = format!("/registry/projects/{name}");
            let current = call(serve, Method::GET, &path, &manager(), &[], "").await;
            let etag = current.header("etag").unwrap_or("\"0-0\"").to_string();
            let reply = if op % 10 == 9 {
                call(
                    serve,
                    Method::DELETE,
                    &path,
                    &manager(),
                    &[("if-match", &etag)],
                    "",
                )
                .await
            } else {
                let body = json!({"access": [format!("user:writer-{op}")]}).to_string();
                call(
                    serve,
                    Method::PUT,
                    &path,
                    &manager(),
                    &[("if-match", &etag)],
                    &body,
                )
                .await
            };
            (
                name,
                reply.status.as_u16(),
                reply.header("etag").map(str::to_string),
            )
        }));
    }
    let mut versions: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    for t in tasks {
        let (name, status, etag) = t.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        assert!([200, 202, 409, 412].contains(&status), "{name}: {status}");
        if status == 200 || status == 202 {
            versions.entry(name).or_default().insert(etag.unwrap());
        }
    }
    eprintln!("statuses: {statuses:?}");
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= projects,
        "{statuses:?}"
    );
    for p in 0..projects {
        let name = format!("c-{p}");
        let revision: usize = pg
            .psql(
                "rise",
                &format!("SELECT revision FROM rise_projects WHERE name = '{name}'"),
            )
            .trim()
            .parse()
            .unwrap();
        let made = versions.get(&name).map_or(0, |v| v.len());
        assert_eq!(
            revision,
            1 + made,
            "{name}: every successful write is one version"
        );
    }
}

/// `config --check` reads the store: how many projects it holds, and a
/// warning for each name the config declares too (config wins).
#[tokio::test]
async fn config_check_names_the_projects_config_and_store_both_hold() {
    use rise_registry::config::StoreUrl;
    use rise_registry::store::{Precondition, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreUrl::Sqlite(dir.path().join("p.db")))
        .await
        .unwrap();
    for name in ["declared", "extra"] {
        let name = rise_registry::naming::ProjectName::parse(name).unwrap();
        store
            .put(
                &name,
                r#"{"access": [], "pull_access": []}"#,
                &Precondition::Any,
                1,
            )
            .await
            .unwrap();
    }
    drop(store);
    std::fs::write(dir.path().join("default.yaml"), config("sqlite:p.db")).unwrap();
    let out = std::process::Command::new(support::server::BIN)
        .args([
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--run-mode",
            "default",
        ])
        .args(["config", "--check"])
        .env_clear()
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 project, 2 in the store"), "{stdout}");
    assert!(
        stderr.contains("project `declared` is declared in config and held in the store"),
        "{stderr}"
    );
    assert!(!stderr.contains("`extra`"), "{stderr}");
}

/// The leader is killed twice while it works (AWS answering in 30 ms, so
/// a pass is under way): the survivor, then a restarted replica, take
/// over, and the work completes: every project kept has its repository and
/// is `ready`, every project deleted is gone with its repository orphaned,
/// and no other repository was made.
#[tokio::test]
async fn the_leader_killed_twice_mid_work_loses_and_repeats_nothing() {
    use support::throttle::{Latency, ThrottlingProxy};
    let emulator = support::Emulator::start();
    support::provision(&emulator).await;
    let proxy = ThrottlingProxy::aws_like(emulator.addr, Latency::default());
    let pg = Postgres::start_new();
    pg.create_db("rise");
    // One caller sends some fifty requests in a few seconds: the per-caller
    // rate limit (a burst of 20) is not what this test is about, and on a
    // loaded machine it answered 429.
    let cfg = format!(
        "{}server: {{rate_limit: {{requests_per_minute: 100000, burst: 100000}}}}\n",
        ecr_controller_config(&emulator, &pg.url("rise"))
    )
    .replace(&emulator.endpoint_url(), &proxy.url());
    let env = aws_env();
    let mut replicas = vec![Serve::start(&cfg, &env), Serve::start(&cfg, &env)];
    let leader = |replicas: &[Serve]| {
        replicas
            .iter()
            .position(|r| r.metric("rise_registry_controller_leader") == 1.0)
    };
    eventually(Duration::from_secs(10), "a leader", || async {
        leader(&replicas).is_some()
    })
    .await;

    let names: Vec<String> = (0..30).map(|i| format!("herd-{i}")).collect();
    for (round, chunk) in names.chunks(15).enumerate() {
        for (i, name) in chunk.iter().enumerate() {
            let r = put(
                &replicas[i % 2],
                name,
                &json!({"access": ["user:dave"]}),
                &[],
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        // Some go again at once, before or after their repository exists.
        for name in chunk.iter().step_by(3) {
            let path = format!("/registry/projects/{name}");
            let r = call(&replicas[0], Method::DELETE, &path, &manager(), &[], "").await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
        // Kill whoever leads now, mid-pass, and start a fresh replica.
        tokio::time::sleep(Duration::from_millis(300)).await;
        eventually(Duration::from_secs(15), "a leader to kill", || async {
            leader(&replicas).is_some()
        })
        .await;
        let l = leader(&replicas).expect("a leader");
        replicas[l].signal("KILL");
        eprintln!("round {round}: killed replica {l}");
        replicas[l] = Serve::start(&cfg, &env);
    }

    let deleted: Vec<&String> = names.chunks(15).flat_map(|c| c.iter().step_by(3)).collect();
    let kept: Vec<&String> = names.iter().filter(|n| !deleted.contains(n)).collect();
    let took = eventually(Duration::from_secs(60), "every change done", || async {
        let rows = pg.psql(
            "rise",
            "SELECT name || ':' || state FROM rise_projects ORDER BY name",
        );
        let rows: Vec<&str> = rows.lines().collect();
        rows.len() == kept.len() && rows.iter().all(|r| r.ends_with(":ready"))
    })
    .await;
    eprintln!("converged {took:?} after the second kill");
    for name in &kept {
        let tags = repository_tags(&emulator, &format!("rise/{name}"))
            .await
            .expect(name);
        assert!(
            tags.contains(&("rise:managed".into(), "true".into())),
            "{name}: {tags:?}"
        );
        assert!(
            !tags.iter().any(|(k, _)| k == "rise:orphaned"),
            "{name}: {tags:?}"
        );
    }
    for name in &deleted {
        if let Some(tags) = repository_tags(&emulator, &format!("rise/{name}")).await {
            assert!(
                tags.contains(&("rise:orphaned".into(), "true".into())),
                "{name}: {tags:?}"
            );
        }
    }
    let ecr = aws_sdk_ecr::Client::new(&emulator.admin_config().await);
    let all = ecr
        .describe_repositories()
        .max_results(1000)
        .send()
        .await
        .unwrap();
    let unexpected: Vec<&str> = all
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name())
        .filter(|n| {
            let project = n.trim_start_matches("rise/");
            *n != "rise/my-app" && !names.iter().any(|k| k == project)
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}
