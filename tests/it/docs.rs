//! The docs against the code: every test a document names as proof exists,
//! so a renamed or removed test cannot leave a claim without its proof.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `file::…::test` references in `doc`: backticked paths of at least
/// two `::`-separated lowercase segments, optionally under `src/`.
fn test_references(doc: &str) -> Vec<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            let path = s.strip_prefix("src/").unwrap_or(s);
            path.split("::").count() >= 2
                && path.split("::").all(|seg| {
                    !seg.is_empty()
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                })
        })
        .map(str::to_string)
        .collect()
}

/// Whether `reference` names a test function in the file it points to:
/// `src/a::b::tests::t` in `src/a/b.rs`, `src/a/b/mod.rs` or a parent
/// module file; `area::t` in `tests/it/area.rs`.
fn test_exists(reference: &str) -> bool {
    let (dir, path) = match reference.strip_prefix("src/") {
        Some(p) => ("src", p),
        None => ("tests/it", reference),
    };
    let segments: Vec<&str> = path.split("::").collect();
    let name = segments[segments.len() - 1];
    let wanted = format!("fn {name}(");
    // The longest module path that is a file holds the test (inline
    // `mod tests` or a sibling test module file).
    (1..segments.len()).rev().any(|n| {
        let module = segments[..n].join("/");
        [format!("{module}.rs"), format!("{module}/mod.rs")]
            .iter()
            .map(|f| Path::new(ROOT).join(dir).join(f))
            .any(|f| std::fs::read_to_string(f).is_ok_and(|text| text.contains(&wanted)))
    })
}

#[test]
fn every_test_the_security_model_cites_exists() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/security.md")).unwrap();
    let refs = test_references(&doc);
    assert!(refs.len() >= 30, "found only {refs:?}");
    let missing: Vec<&String> = refs.iter().filter(|r| !test_exists(r)).collect();
    assert!(
        missing.is_empty(),
        "docs/security.md cites tests that do not exist: {missing:?}"
    );
    // The checker itself finds nothing that is not there.
    assert!(!test_exists("serve::no_such_test"));
    assert!(!test_exists("src/policy::tests::no_such_test"));
}

fn read_doc(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(name)).unwrap()
}

/// The fenced blocks of `doc` in `lang`, in order.
fn blocks(doc: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    doc.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_string())
        .collect()
}

/// README's "Try it": serve on the shipped config with no environment, a
/// token from `token --email`, and the answer exactly as the README prints
/// it (field order included).
#[tokio::test]
async fn the_readme_quick_start_answers_as_shown() {
    use crate::support::server::{BIN, Serve};
    let readme = read_doc("README.md");
    let try_it = &blocks(&readme, "sh")[1];
    assert!(try_it.contains("token --email dev@example.com"), "{try_it}");
    let shown: String = try_it
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(str::trim)
        .collect();
    let config_dir = Path::new(ROOT).join("config");
    let serve = Serve::start_in(&config_dir, "development", &[]);
    let token = std::process::Command::new(BIN)
        .arg("--config-dir")
        .arg(&config_dir)
        .args(["token", "--email", "dev@example.com"])
        .env_clear()
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap();
    let reply = crate::support::http::get(
        &serve.url("/registry/credentials?project=my-app"),
        Some(token.trim()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, shown, "README's example answer");
}

/// docs/registry.md's `oci-token registry-config` example, run as written
/// on the shipped config (its keys made by `dev-ca` beside `config/`), prints
/// the block the doc shows.
#[test]
fn the_registry_config_example_prints_what_the_doc_shows() {
    use crate::support::server::BIN;
    let doc = read_doc("docs/registry.md");
    let sh = blocks(&doc, "sh");
    let command = sh
        .iter()
        .find(|b| b.contains("oci-token registry-config"))
        .unwrap();
    let args: Vec<String> = command
        .replace("\\\n", " ")
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(args[..2], ["--run-mode", "oci-token"], "{command}");
    let shown = blocks(&doc, "yaml")
        .into_iter()
        .find(|b| b.contains("auth:\n  token:"))
        .unwrap();

    let checkout = crate::support::checkout_with_pki();
    let out = std::process::Command::new(BIN)
        .current_dir(checkout.path())
        .args(&args)
        .env_clear()
        .env("RISE_JWT_SECRET", "a-local-secret-of-enough-length-0123456")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), shown);
    assert!(checkout.path().join("rise-token-root.crt").exists());
}

/// docs/registry.md's "ECR locally, against the AWS API emulator": the
/// example config, as the doc shows it and as shipped, applied with the
/// emulator's keys, then serve issuing credentials for `my-app`.
#[tokio::test]
async fn the_local_ecr_walkthrough_issues_credentials() {
    use crate::support::server::Serve;
    use crate::support::{ADMIN_KEY, Emulator};
    let doc = read_doc("docs/registry.md");
    let example = read_doc("docs/examples/local-ecr.yaml");
    assert!(
        blocks(&doc, "yaml").contains(&example),
        "docs/registry.md shows docs/examples/local-ecr.yaml as it is"
    );
    let emulator = Emulator::start();
    let config = example.replace("http://127.0.0.1:4566", &emulator.endpoint_url());
    assert_ne!(config, example);
    let secret = "walkthrough-secret-walkthrough-secret-0123";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.yaml"), &config).unwrap();
    let apply = crate::support::rise_registry_as_admin(dir.path())
        .args(["apply", "--auto-approve"])
        .env("RISE_JWT_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let serve = Serve::start(
        &config,
        &[
            ("AWS_ACCESS_KEY_ID", ADMIN_KEY),
            ("AWS_SECRET_ACCESS_KEY", ADMIN_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("RISE_JWT_SECRET", secret),
        ],
    );
    let token = crate::support::jwt::hs256(
        secret,
        &crate::support::jwt::claims("u-1", Some("dev@example.com"), &[]),
    );
    let reply = crate::support::http::get(
        &serve.url("/registry/credentials?project=my-app"),
        Some(&token),
    )
    .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, serve.logs());
    let body = reply.json();
    assert_eq!(
        body["image"],
        format!("{}/rise/my-app", emulator.addr),
        "{body}"
    );
    assert_eq!(body["credentials"]["username"], "AWS");
}

/// docs/serve.md's token endpoint bodies, as the realm writes them: each
/// documented line's `error.code`, literal message (`…` stands for any) and
/// whether it carries the registry's `errors`.
#[tokio::test(flavor = "multi_thread")]
async fn the_token_endpoint_bodies_are_as_documented() {
    use crate::support::http::send;
    use crate::support::in_process::TestServer;
    use hyper::Method;
    let doc = read_doc("docs/serve.md");
    let block = blocks(&doc, "json")
        .into_iter()
        .find(|b| b.contains("method_not_allowed"))
        .unwrap();
    let documented: Vec<serde_json::Value> = block
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pki = tempfile::tempdir().unwrap();
    crate::support::dev_ca(pki.path());
    let config = format!(
        "registry:\n  type: oci-token\n  registry_url: \"127.0.0.1:5000\"\n  namespace: rise-apps\n  service: rise-registry\n  issuer: rise-broker\n  signing_key_file: {}\n  certificate_chain_file: {}\nprojects:\n  - {{name: my-app, access: [\"user:alice\"]}}\nauth: {{hs256_secret: docs-test-secret-docs-test-secret-0123456}}\nserver:\n  rate_limit: {{requests_per_minute: 1, burst: 1}}\n",
        pki.path().join("token.key").display(),
        pki.path().join("token.crt").display()
    );
    let serve = TestServer::start(&config).await;
    let realm = serve.url("/registry/token?service=rise-registry");
    let token = crate::support::jwt::hs256(
        "docs-test-secret-docs-test-secret-0123456",
        &crate::support::jwt::claims("alice", None, &[]),
    );
    let creds = crate::support::http::get(
        &serve.url("/registry/credentials?project=my-app"),
        Some(&token),
    )
    .await
    .json();
    let ticket = creds["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let basic = |password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("rise:{password}"))
        )
    };
    let expired = {
        // A ticket of this broker, issued two hours ago.
        let key =
            rise_registry::registry::oci_token::OciTokenProvider::load(
                match &serve_config(&config).registry {
                    rise_registry::config::RegistryConfig::OciToken(oci) => oci,
                    _ => unreachable!(),
                },
            )
            .unwrap();
        key.issue_ticket(
            &rise_registry::naming::ProjectName::parse("my-app").unwrap(),
            &rise_registry::auth::Caller::from_subject("alice"),
            crate::support::jwt::now() - 7200,
        )
        .password
        .expose()
        .clone()
    };
    let answers = [
        send(Method::PUT, &realm, &[], "").await,
        send(
            Method::GET,
            &format!("{realm}&scope=x&scope=x%zz"),
            &[("authorization", &basic(&ticket))],
            "",
        )
        .await,
        send(Method::GET, &realm, &[], "").await,
        send(
            Method::GET,
            &realm,
            &[("authorization", &basic(&expired))],
            "",
        )
        .await,
        {
            // The burst of one is spent by the first good request.
            let ok = send(
                Method::GET,
                &realm,
                &[("authorization", &basic(&ticket))],
                "",
            )
            .await;
            assert_eq!(ok.status, 200, "{}", ok.body);
            send(
                Method::GET,
                &realm,
                &[("authorization", &basic(&ticket))],
                "",
            )
            .await
        },
    ];
    for (doc_line, answer) in documented.iter().zip(&answers) {
        let got = answer.json();
        assert_eq!(
            got["error"]["code"], doc_line["error"]["code"],
            "{}",
            answer.body
        );
        let message = doc_line["error"]["message"].as_str().unwrap();
        if message != "…" {
            assert_eq!(got["error"]["message"], message, "{}", answer.body);
        }
        assert_eq!(
            got.get("errors").is_some(),
            doc_line.get("errors").is_some(),
            "{}",
            answer.body
        );
        if let Some(errors) = doc_line.get("errors") {
            assert_eq!(
                got["errors"][0]["code"], errors[0]["code"],
                "{}",
                answer.body
            );
        }
    }
    assert_eq!(documented.len(), answers.len());
}

fn serve_config(config: &str) -> rise_registry::config::Config {
    crate::support::load_config(&[("default.yaml", config)], &[]).unwrap()
}

/// docs/terraform.md's hand-off from `terraform output -json
/// rise_ecr_config` to the environment production.yaml reads: every key of
/// the module's `rise_config` output (but the fixed `type` and
/// `manage_roles` and the optional `irsa` block) reaches the variable
/// production.yaml reads for it, and the
/// IRSA example names an output the IRSA root defines.
#[test]
fn the_terraform_hand_off_passes_every_rise_config_value() {
    let doc = read_doc("docs/terraform.md");
    let outputs = read_doc("modules/rise-aws/outputs.tf");
    let production = read_doc("config/production.yaml");
    let body = &outputs[outputs.find("output \"rise_config\"").unwrap()..];
    let body = &body[..body.find("irsa").unwrap()];
    let keys: Vec<&str> = body
        .lines()
        .filter_map(|l| l.trim().split_once(" = ").map(|(k, _)| k.trim()))
        .filter(|k| !["type", "manage_roles", "value", "description"].contains(k))
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    let hand_off = blocks(&doc, "sh")
        .into_iter()
        .find(|b| b.contains("export RISE_PUSH_ROLE_ARN"))
        .unwrap();
    for key in keys {
        // The variable production.yaml substitutes for this key.
        let line = production
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("production.yaml has no {key}"));
        let var = line
            .split("${")
            .nth(1)
            .unwrap()
            .split([':', '}'])
            .next()
            .unwrap();
        assert!(
            hand_off.contains(&format!("export {var}=$(jq -r .{key} ")),
            "{key} -> {var} is not handed off:\n{hand_off}"
        );
    }
    let irsa = read_doc("terraform/irsa/main.tf");
    assert!(irsa.contains("output \"service_account_role_arn\""));
    assert!(doc.contains("`service_account_role_arn`"));
}

/// docs/serve.md's metrics table names every metric family `/metrics`
/// prints, with its type, and nothing else; and the credential outcomes it
/// lists are the ones the server counts.
#[tokio::test]
async fn the_metrics_table_is_what_metrics_prints() {
    use crate::support::in_process::TestServer;
    let doc = read_doc("docs/serve.md");
    let documented: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `rise_registry_"))
        // Series of the project store, the controller and key files are
        // printed only with them, which this server has not
        // (tests/it/projects.rs and serve_oci_token.rs read them).
        .filter(|rest| {
            !rest.contains("with a `store` only")
                && !rest.contains("with `controller.enabled` only")
                && !rest.contains("with `server.tls` or `oci-token` only")
                && !rest.contains("with `registry.type: ecr` only")
        })
        .map(|rest| {
            let mut cells = rest.split('|').map(str::trim);
            let name = format!(
                "rise_registry_{}",
                cells.next().unwrap().trim_end_matches('`')
            );
            (name, cells.next().unwrap().to_string())
        })
        .collect();
    let serve = TestServer::start(
        "registry: {type: oci-client-auth, registry_url: \"localhost:5000\", namespace: rise-apps}\nprojects: [{name: my-app, access: [\"user:alice\"]}]\nauth: {hs256_secret: docs-test-secret-docs-test-secret-0123456}\n",
    )
    .await;
    let text = crate::support::http::get(&serve.url("/metrics"), None)
        .await
        .body;
    let printed: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect();
    assert_eq!(
        documented, printed,
        "docs/serve.md's table against /metrics"
    );
    let outcomes = doc
        .split("Credential `outcome`s:")
        .nth(1)
        .unwrap()
        .split(". ")
        .next()
        .unwrap();
    for outcome in [
        "issued",
        "cache_hit",
        "stale",
        "bad_request",
        "unauthenticated",
        "rate_limited",
        "not_found",
        "unavailable",
        "method_not_allowed",
    ] {
        assert!(
            outcomes.contains(&format!("`{outcome}`")),
            "{outcome}: {outcomes}"
        );
    }
}

/// Every configuration example of workload identities (docs/ci.md's
/// serve side, docs/configuration.md's issuers and rules) loads as
/// written, beside a registry section, and its rules name its issuers.
#[test]
fn the_workload_identity_examples_load() {
    let mut checked = 0;
    for doc in ["docs/ci.md", "docs/configuration.md"] {
        for block in blocks(&read_doc(doc), "yaml") {
            if !block.contains("issuers:") {
                continue;
            }
            let text = format!(
                "registry: {{type: oci-client-auth, registry_url: 'localhost:5000'}}\n{block}"
            );
            let config = crate::support::load_config(
                &[("default.yaml", &text)],
                &[("RISE_JWT_SECRET", "a-documentation-secret-0123456789abcdef")],
            )
            .unwrap_or_else(|e| panic!("{doc}:\n{block}\n{e}"));
            assert!(!config.auth.issuers.is_empty(), "{doc}:\n{block}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "found only {checked} examples");
}

/// docs/projects.md's `curl` example, sent as written to serve with a
/// SQLite store, makes the project, and `GET` answers in the shape the doc
/// shows (the same keys, the rules as sent).
#[tokio::test]
async fn the_projects_api_example_answers_as_documented() {
    use crate::support::server::Serve;
    use serde_json::Value;
    let doc = read_doc("docs/projects.md");
    let curl = blocks(&doc, "sh")
        .into_iter()
        .find(|b| b.contains("curl") && b.contains("-X PUT"))
        .expect("a curl PUT example");
    let path = curl
        .split('"')
        .find_map(|s| s.strip_prefix("$RISE"))
        .expect("a \"$RISE/...\" URL");
    let body = curl
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a -d '...' body");
    let shown: Value = blocks(&doc, "json")
        .iter()
        .find(|b| b.contains("\"source\": \"store\""))
        .map(|b| serde_json::from_str(b).unwrap())
        .expect("the GET example");

    let secret = "docs-test-secret-docs-test-secret-0123456";
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &format!(
            "registry: {{type: ecr, region: us-east-1, account_id: \"123456789012\", role_arn: \"arn:aws:iam::123456789012:role/rise-backend\", push_role_arn: \"arn:aws:iam::123456789012:role/rise-backend-ecr-push\"}}\n\
             auth: {{hs256_secret: {secret}, project_managers: [\"user:rise-backend\"]}}\n\
             store: {{url: \"sqlite:{}\"}}\n",
            data.path().join("p.db").display()
        ),
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    );
    let token = crate::support::jwt::hs256(
        secret,
        &crate::support::jwt::claims("rise-backend", None, &[]),
    );
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let put =
        crate::support::http::send(hyper::Method::PUT, &serve.url(path), &headers, body).await;
    assert_eq!(put.status, 201, "{}", put.body);
    let got = crate::support::http::send(hyper::Method::GET, &serve.url(path), &headers, "").await;
    let got = got.json();
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&got), keys(&shown), "{got}");
    assert_eq!(
        keys(&got["repository"]),
        keys(&shown["repository"]),
        "{got}"
    );
    for field in ["name", "source", "access", "pull_access"] {
        assert_eq!(got[field], shown[field], "{field}");
    }
    assert_eq!(got["repository"]["name"], shown["repository"]["name"]);
    assert_eq!(got["repository"]["state"], shown["repository"]["state"]);
}
