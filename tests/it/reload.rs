//! Config reload without a restart (src/serve/reload.rs): the real binary
//! on a config directory laid out as a Kubernetes ConfigMap volume, changed
//! by the kubelet's symlink swap and by SIGHUP; and, in process, the drop of
//! cached ECR credentials when their project goes.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Emulator;
use support::http::{Conn, get};
use support::in_process::TestServer;
use support::jwt::{claims, hs256};
use support::kube::write_text_volume;
use support::server::Serve;

const SECRET: &str = "reload-test-secret-reload-test-secret-0123";

/// A config whose projects are `projects` (name and the one user allowed).
fn config(projects: &[(&str, &str)], extra: &str) -> String {
    let projects: Vec<String> = projects
        .iter()
        .map(|(name, user)| format!("  - {{name: {name}, access: [\"user:{user}\"]}}\n"))
        .collect();
    format!(
        "registry: {{type: oci-client-auth, registry_url: \"localhost:5000\"}}\n\
         auth: {{issuer: rise, audience: rise, hs256_secret: {SECRET}}}\n\
         projects:\n{}{extra}",
        projects.concat()
    )
}

/// A constant layer beside the changing `default.yaml`: the tests poll
/// the credential endpoint, which must not run into the rate limit.
const LOCAL: &str = "server: {rate_limit: {requests_per_minute: 100000, burst: 100000}}\n";

/// Writes `default` and [`LOCAL`] into the ConfigMap-style `volume`.
fn update(volume: &std::path::Path, default: &str) {
    write_text_volume(volume, &[("default.yaml", default), ("local.yaml", LOCAL)]);
}

fn token(sub: &str) -> String {
    let mut c = claims(sub, None, &[]);
    c["iss"] = json!("rise");
    c["aud"] = json!("rise");
    hs256(SECRET, &c)
}

fn status(serve: &Serve, project: &str, user: &str) -> u16 {
    Conn::new(serve.addr)
        .get(
            &format!("/registry/credentials?project={project}"),
            Some(&token(user)),
        )
        .0
}

/// Waits (bounded) until `check` holds; serve polls its files every 2 s.
fn eventually(what: &str, serve: &Serve, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 15 s:\n{}",
            serve.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A ConfigMap update as the kubelet makes it (a new folder, `..data`
/// swapped): serve reloads without a restart; a new project and changed
/// access apply to the next request, a removed project answers 404.
/// An invalid config is refused with its file, line and key, counted, and
/// the old config keeps serving; a changed listen address is reported as
/// needing a restart while the rest applies. SIGHUP reloads on demand.
#[test]
fn serve_reloads_a_config_map_swap_and_sighup_and_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("config");
    update(&volume, &config(&[("app-a", "alice")], ""));
    let serve = Serve::start_in(&volume, "default", &[]);
    assert_eq!(status(&serve, "app-a", "alice"), 200);
    assert_eq!(status(&serve, "app-b", "alice"), 404);

    // New project b for alice, a removed.
    update(&volume, &config(&[("app-b", "alice")], ""));
    eventually("the reload of a new project", &serve, || {
        status(&serve, "app-b", "alice") == 200
    });
    assert_eq!(status(&serve, "app-a", "alice"), 404, "a removed project");
    assert_eq!(
        serve.metric("rise_registry_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert!(serve.logs().contains("config reloaded"), "{}", serve.logs());
    let pid = serve.pid();

    // Access changes: bob instead of alice.
    update(&volume, &config(&[("app-b", "bob")], ""));
    eventually("the reload of changed access", &serve, || {
        status(&serve, "app-b", "bob") == 200
    });
    assert_eq!(status(&serve, "app-b", "alice"), 404);

    // An invalid config: refused, reported with file, line and key, and
    // counted; the running config stays.
    update(
        &volume,
        &config(&[("app-c", "bob")], "server: {max_conections: 5}\n"),
    );
    eventually("the refusal of an invalid config", &serve, || {
        serve.metric("rise_registry_config_reloads_total{result=\"error\"}") == 1.0
    });
    let logs = serve.logs();
    assert!(
        logs.contains("default.yaml:5: server.max_conections: unknown key"),
        "{logs}"
    );
    assert!(logs.contains("did you mean `max_connections`?"), "{logs}");
    assert_eq!(status(&serve, "app-b", "bob"), 200, "the old config serves");
    assert_eq!(status(&serve, "app-c", "bob"), 404);
    // Refused once, not again on every poll of the same files.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        serve.metric("rise_registry_config_reloads_total{result=\"error\"}"),
        1.0
    );

    // A new listen address cannot apply live: reported, the rest applies.
    update(
        &volume,
        &config(&[("app-c", "bob")], "server: {listen: \"127.0.0.1:1\"}\n"),
    );
    eventually("the reload with a new listen address", &serve, || {
        status(&serve, "app-c", "bob") == 200
    });
    assert_eq!(
        serve.metric("rise_registry_config_restart_required"),
        1.0,
        "{}",
        serve.logs()
    );
    let logs = serve.logs();
    assert!(
        logs.contains("apply only after a restart") && logs.contains("server.listen"),
        "{logs}"
    );

    // SIGHUP reloads even with the files unchanged.
    let before = serve.metric("rise_registry_config_reloads_total{result=\"ok\"}");
    serve.signal("HUP");
    eventually("the reload on SIGHUP", &serve, || {
        serve.metric("rise_registry_config_reloads_total{result=\"ok\"}") == before + 1.0
    });
    assert!(
        serve.logs().contains("trigger=\"SIGHUP\""),
        "{}",
        serve.logs()
    );
    assert_eq!(serve.pid(), pid, "the same process throughout");
}

/// With a plain directory (no symlinks), rewriting a file in place is seen
/// too; a file the run mode needs going missing is refused like any
/// invalid config.
#[test]
fn serve_reloads_a_file_rewritten_in_place_and_refuses_a_missing_layer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.yaml"),
        config(&[("app-a", "alice")], ""),
    )
    .unwrap();
    std::fs::write(dir.path().join("staging.yaml"), "projects: []\n").unwrap();
    let serve = Serve::start_in(dir.path(), "staging", &[]);
    assert_eq!(
        status(&serve, "app-a", "alice"),
        404,
        "staging.yaml has none"
    );
    std::fs::write(
        dir.path().join("staging.yaml"),
        "projects: [{name: app-s, access: [\"user:alice\"]}]\n",
    )
    .unwrap();
    eventually("the reload of the run mode's layer", &serve, || {
        status(&serve, "app-s", "alice") == 200
    });
    std::fs::remove_file(dir.path().join("staging.yaml")).unwrap();
    eventually("the refusal of a missing layer", &serve, || {
        serve.metric("rise_registry_config_reloads_total{result=\"error\"}") == 1.0
    });
    assert_eq!(
        status(&serve, "app-s", "alice"),
        200,
        "the old config serves"
    );
}

/// Removing a project drops its cached ECR credentials: the cache gauge
/// falls, and a request for it is a 404, not a cache hit.
#[tokio::test]
async fn a_reload_drops_cached_credentials_of_removed_projects() {
    let emulator = Emulator::start();
    support::provision(&emulator).await;
    let ecr = |projects: &str| {
        format!(
            "{}projects: {projects}\nauth: {{hs256_secret: {SECRET}}}\n",
            emulator.registry_block()
        )
    };
    let serve = TestServer::start(&ecr(r#"[{name: my-app, access: ["user:u-1"]}]"#)).await;
    let t = hs256(SECRET, &claims("u-1", None, &[]));
    let url = serve.url("/registry/credentials?project=my-app");
    let reply = get(&url, Some(&t)).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, serve.logs());
    assert_eq!(
        serve
            .metric("rise_registry_credential_cache_entries ")
            .await,
        1
    );

    let next = support::load_config(&[("default.yaml", &ecr("[]"))], &[]).unwrap();
    let change = serve.app.reload(next).await.unwrap();
    assert_eq!(change.removed, ["my-app"]);
    assert!(change.restart_needed.is_empty());
    assert_eq!(
        serve
            .metric("rise_registry_credential_cache_entries ")
            .await,
        0
    );
    assert_eq!(get(&url, Some(&t)).await.status, 404);
}

/// A writer that rewrites `default.yaml` in place and pauses halfway
/// leaves a file that reads as a valid config of its own (here the first
/// of the new projects only; in general a rule cut before its last
/// condition, which grants more). serve applies the files only once they
/// have read the same for its settle window, so the half is never
/// applied; the whole file is, once, and the reload names the access it
/// grants.
#[test]
fn a_file_written_in_place_is_applied_only_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.yaml");
    std::fs::write(&file, config(&[("app-a", "alice")], "")).unwrap();
    let serve = Serve::start_in(dir.path(), "default", &[]);
    let whole = config(
        &[("app-a", "alice"), ("app-b", "bob"), ("app-c", "carol")],
        "",
    );
    let half = config(&[("app-a", "alice"), ("app-b", "bob")], "");
    assert!(whole.starts_with(&half));
    std::fs::write(&file, &half).unwrap();
    // Longer than a poll (2 s), shorter than the settle window after it.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(&file, &whole).unwrap();
    eventually("the reload of the whole file", &serve, || {
        status(&serve, "app-c", "carol") == 200
    });
    let logs = serve.logs();
    let reloads: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("config reloaded"))
        .collect();
    assert_eq!(reloads.len(), 1, "{logs}");
    assert!(reloads[0].contains("projects=3"), "{logs}");
    assert!(
        reloads[0].contains(r#"projects[app-c].access: + \"user:carol\""#),
        "{logs}"
    );
}

/// serve's config with `admins` and one trusted OIDC issuer `gh` at
/// `issuer` (its entry ending in `gh_extra`), `user:alice` on `my-app`.
fn with_issuer(admins: &str, issuer: &str, gh_extra: &str) -> String {
    format!(
        "registry: {{type: oci-client-auth, registry_url: \"localhost:5000\"}}\n\
         projects: [{{name: my-app, access: [\"user:alice\"]}}]\n\
         auth:\n  issuer: rise\n  audience: rise\n  hs256_secret: {SECRET}\n  admins: [{admins}]\n\
         \x20 issuers:\n    - {{name: gh, issuer: \"{issuer}\", audience: rise{gh_extra}}}\n"
    )
}

/// A change that leaves an issuer's entry alone fetches nothing from it:
/// with one issuer's identity provider answering HTML, removing an admin
/// used to be refused ("no keys could be fetched for: gh") and the removed
/// admin kept getting credentials. Now the revocation applies at once,
/// with no request to that provider.
#[tokio::test]
async fn a_revocation_waits_on_no_unrelated_issuer() {
    let gh = support::oidc::OidcIssuer::start("gh");
    let serve = TestServer::start(&with_issuer("\"user:root\"", &gh.url, "")).await;
    let root = || {
        let url = serve.url("/registry/credentials?project=my-app");
        async move { support::http::request(hyper::Method::GET, &url, Some(&token("root"))).await }
    };
    assert_eq!(root().await.status, 200, "an admin");
    gh.break_down();
    let asked = gh.requests();
    let text = with_issuer("", &gh.url, "");
    let config = support::load_config(&[("default.yaml", &text)], &[]).unwrap();
    let change = serve
        .app
        .reload(config)
        .await
        .expect("the revocation applies");
    assert_eq!(change.access, [r#"auth.admins: - "user:root""#]);
    assert_eq!(gh.requests(), asked, "nothing was asked of gh");
    assert_eq!(root().await.status, 404, "no longer an admin");
}

/// A reload refused because an issuer's new key location cannot be read
/// is tried again with back-off while the files stay as they are, and
/// `rise_registry_config_stale` says meanwhile that serve runs an older
/// config than its files hold; once the provider answers, the retry
/// applies it without SIGHUP.
#[test]
fn a_refused_reload_is_retried_and_the_stale_config_is_shown() {
    let gh = support::oidc::OidcIssuer::start("gh");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.yaml");
    std::fs::write(&file, with_issuer("", &gh.url, "")).unwrap();
    let serve = Serve::start_in(dir.path(), "default", &[]);
    let stale = || serve.metric("rise_registry_config_stale");
    assert_eq!(stale(), 0.0);
    gh.break_down();
    // gh's keys move to a URL that answers HTML: the new authenticator
    // could not verify gh's tokens, which verify now.
    let moved = format!(", jwks_url: \"{}\"", gh.jwks_url());
    std::fs::write(&file, with_issuer("\"user:root\"", &gh.url, &moved)).unwrap();
    eventually("the refusal", &serve, || stale() == 1.0);
    assert!(
        serve.logs().contains("no keys could be fetched for: gh"),
        "{}",
        serve.logs()
    );
    gh.mend();
    eventually("the retry", &serve, || stale() == 0.0);
    let logs = serve.logs();
    assert!(logs.contains("trigger=\"retry\""), "{logs}");
    assert_eq!(
        status(&serve, "my-app", "root"),
        200,
        "the new admin applies"
    );
}
