//! `doctor` as an operator runs it, against the AWS emulator and real
//! registries (Debian's docker-registry, serve in the test process as its
//! realm): each test breaks one thing and asserts the check that finds it,
//! its fix, and that the checks it blocks are skipped, never passed.
//!
//! The ECR setups trust the emulator's admin identity (the account root)
//! through `trusted_principals`, as docs/registry.md explains: the emulator
//! matches a role principal by exact ARN, so a session of the controller
//! is not `role/rise-backend` to it, while the account root admits it.

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::in_process::TestServer;
use support::registry::DockerRegistry;
use support::server::BIN;
use support::{ACCOUNT_ID, Emulator, dev_ca, free_port};

/// What a doctor run found: the checks that did not pass, as
/// `(id, project, outcome)`.
fn not_passed(report: &Value) -> Vec<(String, String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] != "pass")
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["project"].as_str().unwrap_or("").to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn check<'a>(report: &'a Value, id: &str, project: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id && c["project"].as_str().unwrap_or("") == project)
        .unwrap_or_else(|| panic!("no check {id} [{project}] in {report:#}"))
}

fn t(id: &str, project: &str, outcome: &str) -> (String, String, String) {
    (id.into(), project.into(), outcome.into())
}

/// Parses `doctor --json`'s stdout and insists on its exit code.
fn report(out: &Output, code: i32) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["ok"], code == 0);
    report
}

// ---------------------------------------------------------------- ecr ---

struct Account {
    emulator: Emulator,
    dir: tempfile::TempDir,
}

impl Account {
    /// An emulator with the roles and repositories of `projects` applied.
    fn applied(projects: &[&str]) -> Self {
        let account = Self {
            emulator: Emulator::start(),
            dir: tempfile::tempdir().unwrap(),
        };
        account.configure(projects, "rise/");
        account.run_ok(&["apply", "--auto-approve"]);
        account
    }

    fn configure(&self, projects: &[&str], prefix: &str) {
        let projects: Vec<String> = projects.iter().map(|p| format!("{{name: {p}}}")).collect();
        let text = format!(
            "{}  repo_prefix: {prefix}\n  trusted_principals: [arn:aws:iam::{ACCOUNT_ID}:root]\n\
             projects: [{}]\nauth: {{hs256_secret: 0123456789abcdef0123456789abcdef}}\n",
            support::ecr_yaml(Some(&self.emulator.endpoint_url())),
            projects.join(", ")
        );
        std::fs::write(self.dir.path().join("default.yaml"), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        support::rise_registry_as_admin(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    fn run_ok(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn doctor(&self, code: i32) -> Value {
        report(&self.run(&["doctor", "--json"]), code)
    }

    async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.emulator.admin_config().await)
    }

    fn apply_hint(&self) -> String {
        format!(
            "rise-registry --config-dir {} --run-mode default apply",
            self.dir.path().display()
        )
    }
}

#[tokio::test]
async fn ecr_all_green() {
    let account = Account::applied(&["my-app", "other-app"]);
    let report = account.doctor(0);
    assert_eq!(not_passed(&report), vec![]);
    assert_eq!(report["registry_type"], "ecr");
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["project"] == "my-app")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "ecr.repository",
            "ecr.repository_tags",
            "ecr.repository_not_orphaned",
            "ecr.push_role_permissions",
            "ecr.session_policy_scope",
            "ecr.push_role",
            "ecr.registry_login",
            "ecr.registry_v2",
        ]
    );
    assert_eq!(
        check(&report, "ecr.caller_identity", "")["detail"],
        format!("arn:aws:iam::{ACCOUNT_ID}:root")
    );
    // The text: one line per check, and the count.
    let out = account.run(&["doctor", "--project", "my-app"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("✔ [my-app] the session policy reaches exactly the project's repository: push and pull on arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app only (6 neighbours refused)\n"),
        "{text}"
    );
    assert!(text.ends_with("\n12 passed\n"), "{text}");
    assert!(!text.contains("other-app"), "--project narrows: {text}");
}

#[tokio::test]
async fn a_push_role_that_does_not_trust_the_controller() {
    let account = Account::applied(&["my-app"]);
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_ID}:role/someone-else")},
        "Action": "sts:AssumeRole"}]});
    account
        .iam()
        .await
        .update_assume_role_policy()
        .role_name("rise-backend-ecr-push")
        .policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    let report = account.doctor(1);
    assert_eq!(
        not_passed(&report),
        vec![
            t("ecr.roles_match", "", "fail"),
            t("ecr.push_role_permissions", "my-app", "skipped"),
            t("ecr.push_role", "my-app", "skipped"),
            t("ecr.registry_login", "my-app", "skipped"),
            t("ecr.registry_v2", "my-app", "skipped"),
        ]
    );
    assert_eq!(
        check(&report, "ecr.roles_match", "")["detail"],
        "apply would update trust rise-backend-ecr-push"
    );
    let blocked = "blocked by ecr.roles_match: the push role is not as configured (apply would update trust rise-backend-ecr-push)";
    assert_eq!(check(&report, "ecr.push_role", "my-app")["detail"], blocked);
    assert_eq!(
        check(&report, "ecr.registry_login", "my-app")["detail"],
        blocked
    );
}

/// One cause, one failure: with the push role deleted, the checks that
/// need it are skipped naming the check that failed, not failed again per
/// project with the same fix.
#[tokio::test]
async fn a_deleted_push_role_is_one_failure_and_the_checks_it_blocks_are_skipped() {
    let account = Account::applied(&["my-app", "other-app"]);
    let iam = account.iam().await;
    iam.delete_role_policy()
        .role_name("rise-backend-ecr-push")
        .policy_name("rise-push")
        .send()
        .await
        .unwrap();
    iam.delete_role()
        .role_name("rise-backend-ecr-push")
        .send()
        .await
        .unwrap();
    let report = account.doctor(1);
    let failed: Vec<_> = not_passed(&report)
        .into_iter()
        .filter(|(_, _, outcome)| outcome == "fail")
        .collect();
    assert_eq!(failed, vec![t("ecr.roles_match", "", "fail")], "{report:#}");
    for project in ["my-app", "other-app"] {
        let push = check(&report, "ecr.push_role", project);
        assert_eq!(push["outcome"], "skipped", "{push}");
        assert!(
            push["detail"].as_str().unwrap().contains("ecr.roles_match"),
            "names the check that blocks it: {push}"
        );
    }
    let text = account.run(&["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1 failed"), "{text}");
}

#[tokio::test]
async fn a_push_role_without_the_ecr_actions() {
    let account = Account::applied(&["my-app"]);
    let login_only = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
    account
        .iam()
        .await
        .put_role_policy()
        .role_name("rise-backend-ecr-push")
        .policy_name("rise-push")
        .policy_document(login_only.to_string())
        .send()
        .await
        .unwrap();
    let report = account.doctor(1);
    // One cause (the push role's policy), one failure: the per-project
    // checks it decides are skipped, naming it.
    assert_eq!(
        not_passed(&report),
        vec![
            t("ecr.roles_match", "", "fail"),
            t("ecr.push_role_permissions", "my-app", "skipped"),
            t("ecr.push_role", "my-app", "skipped"),
            t("ecr.registry_login", "my-app", "skipped"),
            t("ecr.registry_v2", "my-app", "skipped"),
        ]
    );
    assert_eq!(
        check(&report, "ecr.roles_match", "")["detail"],
        "apply would put role policy rise-backend-ecr-push/rise-push"
    );
    assert_eq!(
        check(&report, "ecr.push_role_permissions", "my-app")["detail"],
        "blocked by ecr.roles_match: the push role is not as configured (apply would put role policy rise-backend-ecr-push/rise-push)"
    );
}

#[tokio::test]
async fn a_missing_repository() {
    let account = Account::applied(&["my-app"]);
    account.configure(&["my-app", "new-app"], "rise/");
    let report = account.doctor(1);
    assert_eq!(
        not_passed(&report),
        vec![
            t("ecr.repository", "new-app", "fail"),
            t("ecr.repository_tags", "new-app", "skipped"),
            t("ecr.repository_not_orphaned", "new-app", "skipped"),
        ]
    );
    let missing = check(&report, "ecr.repository", "new-app");
    assert_eq!(missing["title"], "repository rise/new-app exists");
    assert_eq!(missing["detail"], "ECR has no such repository");
    assert_eq!(
        missing["hint"],
        format!("`{}` creates it", account.apply_hint())
    );
}

#[tokio::test]
async fn an_orphaned_repository() {
    let account = Account::applied(&["my-app", "old-app"]);
    account.configure(&["my-app"], "rise/");
    account.run_ok(&["apply", "--auto-approve"]);
    // The project comes back, but apply has not run since.
    account.configure(&["my-app", "old-app"], "rise/");
    let report = account.doctor(1);
    assert_eq!(
        not_passed(&report),
        vec![t("ecr.repository_not_orphaned", "old-app", "fail")]
    );
    let orphan = check(&report, "ecr.repository_not_orphaned", "old-app");
    assert_eq!(
        orphan["hint"],
        format!(
            "`{}` removes the tag now that the project is configured",
            account.apply_hint()
        )
    );
}

#[tokio::test]
async fn a_wrong_prefix() {
    let account = Account::applied(&["my-app"]);
    account.configure(&["my-app"], "apps/");
    let report = account.doctor(1);
    assert_eq!(
        not_passed(&report),
        vec![
            // The roles were made for rise/*, so they differ as well.
            t("ecr.roles_match", "", "fail"),
            t("ecr.repository", "my-app", "fail"),
            t("ecr.repository_tags", "my-app", "skipped"),
            t("ecr.repository_not_orphaned", "my-app", "skipped"),
            // The push role differs: one failure above, these skipped.
            t("ecr.push_role_permissions", "my-app", "skipped"),
            t("ecr.push_role", "my-app", "skipped"),
            t("ecr.registry_login", "my-app", "skipped"),
            t("ecr.registry_v2", "my-app", "skipped"),
        ]
    );
    let repository = check(&report, "ecr.repository", "my-app");
    assert_eq!(
        repository["detail"],
        "not under registry.repo_prefix `apps/`, but ECR has rise/my-app"
    );
    assert_eq!(
        repository["hint"],
        format!(
            "registry.repo_prefix is `apps/`: set it to the prefix the repositories were made with, or `{}` to create apps/my-app",
            account.apply_hint()
        )
    );
}

#[tokio::test]
async fn aws_down() {
    let mut account = Account::applied(&["my-app"]);
    account.emulator.stop();
    let report = account.doctor(1);
    let failed = not_passed(&report);
    assert_eq!(failed[0], t("ecr.caller_identity", "", "fail"));
    assert!(
        failed[1..]
            .iter()
            .all(|(_, _, outcome)| outcome == "skipped"),
        "{failed:?}"
    );
    // The caller, then 3 global and 7 per-project checks (the session
    // policy's scope needs no AWS and passes).
    assert_eq!(
        failed.len(),
        1 + 3 + 7,
        "everything else skipped: {failed:?}"
    );
    assert_eq!(
        check(&report, "ecr.caller_identity", "")["hint"],
        "AWS could not be reached; check registry.region, registry.endpoint_url and AWS_ENDPOINT_URL, and the network path (proxy, DNS, security groups)"
    );
    assert_eq!(
        check(&report, "ecr.push_role", "my-app")["detail"],
        "AWS did not answer GetCallerIdentity"
    );
}

// ---------------------------------------------------------- oci-token ---

const SECRET: &str = "doctor-test-secret-doctor-test-secret-0123";

fn oci_token_config(registry: SocketAddr, key: &Path, chain: &Path) -> String {
    format!(
        "registry:\n  type: oci-token\n  registry_url: \"{registry}\"\n  namespace: rise-apps\n  \
         service: rise-registry\n  issuer: rise-broker\n  signing_key_file: {}\n  \
         certificate_chain_file: {}\n\
         projects:\n  - {{name: my-app, access: [\"user:alice\"]}}\n\
         auth:\n  hs256_secret: {SECRET}\n",
        key.display(),
        chain.display()
    )
}

/// serve (as realm) and docker-registry set up from the binary's own
/// `registry-config`, with the realm and bundle the test chooses.
struct TokenSetup {
    serve: TestServer,
    _registry: DockerRegistry,
    conf: tempfile::TempDir,
    _pki: tempfile::TempDir,
}

impl TokenSetup {
    /// `key` and `chain` default to a fresh dev CA's; `realm` to serve's;
    /// `bundle` to the chain's root.
    async fn start(
        files: Option<(&Path, &Path)>,
        realm: Option<&str>,
        bundle: Option<&Path>,
    ) -> Self {
        let pki = tempfile::tempdir().unwrap();
        dev_ca(pki.path());
        let (key, chain) = match files {
            Some((k, c)) => (k.to_path_buf(), c.to_path_buf()),
            None => (pki.path().join("token.key"), pki.path().join("token.crt")),
        };
        let registry_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = oci_token_config(registry_addr, &key, &chain);
        let serve = TestServer::start(&config).await;
        let conf = tempfile::tempdir().unwrap();
        std::fs::write(conf.path().join("default.yaml"), &config).unwrap();
        let realm = realm.map_or_else(|| serve.url("/registry/token"), str::to_string);
        let own_bundle = pki.path().join("root.crt");
        let mut cmd = Command::new(BIN);
        cmd.arg("--config-dir")
            .arg(conf.path())
            .args([
                "--run-mode",
                "default",
                "oci-token",
                "registry-config",
                "--realm",
                &realm,
            ])
            .arg("--rootcertbundle")
            .arg(bundle.unwrap_or(&own_bundle))
            .arg("--bundle-out")
            .arg(&own_bundle)
            .env_clear();
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let registry =
            DockerRegistry::start(registry_addr, &String::from_utf8(out.stdout).unwrap());
        Self {
            serve,
            _registry: registry,
            conf,
            _pki: pki,
        }
    }

    fn doctor(&self, extra: &[&str], code: i32) -> Value {
        self.doctor_env(extra, &[], code)
    }

    /// As [`Self::doctor`], with `env` as the environment.
    fn doctor_env(&self, extra: &[&str], env: &[(&str, &str)], code: i32) -> Value {
        let out = Command::new(BIN)
            .arg("--config-dir")
            .arg(self.conf.path())
            .args([
                "--run-mode",
                "default",
                "doctor",
                "--json",
                "--url",
                &self.serve.url(""),
            ])
            .args(extra)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        report(&out, code)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_token_all_green() {
    let setup = TokenSetup::start(None, None, None).await;
    let token = support::jwt::hs256(SECRET, &support::jwt::claims("alice", None, &[]));
    // The token from a file or a variable, as login takes it, does the
    // same as on the command line (where other users could read it).
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    let path = file.path().to_str().unwrap();
    for (flags, env) in [
        (vec!["--token-file", path], vec![]),
        (
            vec!["--token-env", "RISE_TOKEN"],
            vec![("RISE_TOKEN", token.as_str())],
        ),
    ] {
        let report = setup.doctor_env(&flags, &env, 0);
        assert_eq!(
            check(&report, "serve.credentials", "my-app")["outcome"],
            "pass",
            "{flags:?}"
        );
    }
    let report = setup.doctor(&["--token", &token], 0);
    assert_eq!(not_passed(&report), vec![]);
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "oci_token.key_matches_chain",
            "oci_token.chain_in_date",
            "oci_token.registry_answers",
            "oci_token.realm",
            "oci_token.token_accepted",
            "oci_token.token_refused_elsewhere",
            "serve.healthz",
            "serve.readyz",
            "serve.credentials",
        ]
    );
    assert_eq!(
        check(&report, "oci_token.token_refused_elsewhere", "my-app")["detail"],
        "rise-apps/my-app-rise-doctor-probe: 401 Unauthorized"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_trusts_another_ca() {
    let other = tempfile::tempdir().unwrap();
    dev_ca(other.path());
    let setup = TokenSetup::start(None, None, Some(&other.path().join("ca.crt"))).await;
    let report = setup.doctor(&[], 1);
    assert_eq!(
        not_passed(&report),
        vec![
            t("oci_token.token_accepted", "my-app", "fail"),
            t("oci_token.token_refused_elsewhere", "my-app", "skipped"),
        ]
    );
    let accepted = check(&report, "oci_token.token_accepted", "my-app");
    assert_eq!(
        accepted["detail"],
        "rise-apps/my-app: the registry answered 401 Unauthorized to a token signed with registry.signing_key_file"
    );
    assert_eq!(
        accepted["hint"],
        format!(
            "the registry's auth.token.rootcertbundle must hold the root of registry.certificate_chain_file (`rise-registry --config-dir {} --run-mode default oci-token registry-config --bundle-out FILE` writes it) and its auth.token.issuer must be `rise-broker`; restart the registry after changing them; its log (log.level: info) says which check failed",
            setup.conf.path().display()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["rise-token".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (key_file, chain_file) = (dir.path().join("token.key"), dir.path().join("token.crt"));
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&chain_file, cert.pem()).unwrap();
    let setup = TokenSetup::start(Some((&key_file, &chain_file)), None, None).await;
    let report = setup.doctor(&[], 1);
    assert_eq!(
        not_passed(&report),
        vec![
            t("oci_token.chain_in_date", "", "fail"),
            t("oci_token.token_accepted", "my-app", "skipped"),
            t("oci_token.token_refused_elsewhere", "my-app", "skipped"),
        ]
    );
    let date = check(&report, "oci_token.chain_in_date", "");
    assert_eq!(date["detail"], "the leaf expired at 2023-11-14T22:13:20Z");
    assert_eq!(
        date["hint"],
        "renew the certificates in registry.certificate_chain_file (`rise-registry oci-token dev-ca --out DIR --force` for a development CA; give the registry the new root), then restart serve"
    );
    assert_eq!(
        check(&report, "oci_token.token_accepted", "my-app")["detail"],
        "the certificate chain is not in date"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_with_another_realm() {
    let setup = TokenSetup::start(None, Some("http://127.0.0.1:9/registry/token"), None).await;
    let report = setup.doctor(&[], 1);
    assert_eq!(not_passed(&report), vec![t("oci_token.realm", "", "fail")]);
    let realm = check(&report, "oci_token.realm", "");
    let expected = setup.serve.url("/registry/token");
    assert_eq!(
        realm["detail"],
        format!("realm is http://127.0.0.1:9/registry/token, rise-registry's is {expected}")
    );
    assert_eq!(
        realm["hint"],
        format!(
            "the registry's config.yml must have auth.token with realm {expected} and service rise-registry: `rise-registry --config-dir {} --run-mode default oci-token registry-config --realm {expected}` prints the block; restart the registry after changing it",
            setup.conf.path().display()
        )
    );
}

// ---------------------------------------------------- oci-client-auth ---

fn client_auth_doctor(registry: SocketAddr, env: &[(&str, &Path)]) -> Output {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("default.yaml"),
        format!(
            "registry: {{type: oci-client-auth, registry_url: \"{registry}\"}}\n\
             projects: [{{name: my-app}}]\nauth: {{hs256_secret: {SECRET}}}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config-dir")
        .arg(conf.path())
        .args(["--run-mode", "default", "doctor", "--json"])
        .env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn oci_client_auth_all_green_with_a_credential_helper() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _registry = DockerRegistry::start(addr, "");
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"credHelpers": {{"{addr}": "rise-test"}}}}"#),
    )
    .unwrap();
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-rise-test");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread host\n[ \"$host\" = \"{addr}\" ] && echo '{{\"ServerURL\":\"{addr}\",\"Username\":\"u\",\"Secret\":\"s\"}}'\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::path::PathBuf::from(format!("{}:/usr/bin:/bin", bin.path().display()));
    let out = client_auth_doctor(addr, &[("DOCKER_CONFIG", docker.path()), ("PATH", &path)]);
    let report = report(&out, 0);
    assert_eq!(not_passed(&report), vec![]);
    assert_eq!(
        check(&report, "oci_client_auth.registry_answers", "")["detail"],
        format!("http://{addr}/v2/ answered 200: it asks for no credentials")
    );
    assert_eq!(
        check(&report, "oci_client_auth.docker_credentials", "")["detail"],
        format!(
            "{}: credHelpers names docker-credential-rise-test, which holds credentials for {addr}",
            docker.path().join("config.json").display()
        )
    );
}

#[test]
fn a_registry_that_is_down() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths": {{"{addr}": {{"auth": "dTpw"}}}}}}"#),
    )
    .unwrap();
    let out = client_auth_doctor(addr, &[("DOCKER_CONFIG", docker.path())]);
    let report = report(&out, 1);
    assert_eq!(
        not_passed(&report),
        vec![t("oci_client_auth.registry_answers", "", "fail")]
    );
    let answers = check(&report, "oci_client_auth.registry_answers", "");
    assert!(
        answers["detail"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{answers}"
    );
    assert_eq!(
        answers["hint"],
        "start the registry and check registry.registry_url; with the compose setup: `docker compose ps registry`, `docker compose logs registry`, `docker compose restart registry`"
    );
}

// ------------------------------------------------------------- issuers ---

/// Each trusted issuer's keys, fetched as serve fetches them: a CI issuer
/// found by discovery passes with its key count, one whose address answers
/// nothing fails naming the key to check; the shared secret has nothing to
/// fetch and no check.
#[test]
fn issuers_whose_keys_cannot_be_fetched() {
    let registry = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _registry = DockerRegistry::start(registry, "");
    let github = support::oidc::OidcIssuer::start("github");
    let gone = format!("http://127.0.0.1:{}", free_port());
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("default.yaml"),
        format!(
            "registry: {{type: oci-client-auth, registry_url: \"{registry}\"}}\n\
             projects: [{{name: my-app}}]\n\
             auth:\n  hs256_secret: {SECRET}\n  issuers:\n\
             \x20   - {{name: github, issuer: \"{}\", audience: rise}}\n\
             \x20   - {{name: gitlab, issuer: \"{gone}\", audience: rise}}\n",
            github.url
        ),
    )
    .unwrap();
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths": {{"{registry}": {{"auth": "dTpw"}}}}}}"#),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config-dir")
        .arg(conf.path())
        .args(["--run-mode", "default", "doctor", "--json"])
        .env_clear()
        .env("DOCKER_CONFIG", docker.path())
        .output()
        .unwrap();
    let report = report(&out, 1);
    let issuers: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "auth.issuer_keys")
        .collect();
    assert_eq!(issuers.len(), 2, "{report:#}");
    assert_eq!(issuers[0]["outcome"], "pass");
    assert_eq!(
        issuers[0]["title"],
        "issuer `github` serves its signing keys"
    );
    assert_eq!(
        issuers[0]["detail"],
        format!(
            "2 RS256/ES256 key(s) from {}/.well-known/openid-configuration",
            github.url
        )
    );
    assert_eq!(github.discovery_fetches(), 1);
    assert_eq!(issuers[1]["outcome"], "fail");
    let detail = issuers[1]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{gone}/.well-known/openid-configuration"))
            && detail.contains("Connection refused"),
        "{detail}"
    );
    assert_eq!(
        issuers[1]["hint"],
        "check `auth.issuers[1].issuer` and that serve can reach it; until it answers, serve refuses this issuer's tokens (401)"
    );
    assert_eq!(not_passed(&report), vec![t("auth.issuer_keys", "", "fail")]);
}
