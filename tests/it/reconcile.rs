//! `plan` and `apply` as a user runs them, against the AWS emulator.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use aws_sdk_ecr::types::{ImageTagMutability, Tag};
use serde_json::Value;
use support::{ACCOUNT_ID, Emulator};

struct Account {
    emulator: Emulator,
    dir: tempfile::TempDir,
}

impl Account {
    fn new() -> Self {
        Self {
            emulator: Emulator::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// An account whose emulator keeps its state on disk across restarts.
    fn persistent() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            emulator: Emulator::start_persistent(&dir.path().join("aws")),
            dir,
        }
    }

    /// Writes the config: the given projects and extra `registry:` lines.
    fn configure(&self, projects: &[&str], registry_extra: &str) {
        self.configure_at(&self.emulator.endpoint_url(), projects, registry_extra);
    }

    /// As [`Self::configure`], reaching AWS through `endpoint`.
    fn configure_at(&self, endpoint: &str, projects: &[&str], registry_extra: &str) {
        self.configure_full(endpoint, projects, "{team: platform}", registry_extra);
    }

    /// As [`Self::configure`], with `registry.tags` given as a YAML flow map.
    fn configure_tags(&self, projects: &[&str], tags: &str, registry_extra: &str) {
        self.configure_full(
            &self.emulator.endpoint_url(),
            projects,
            tags,
            registry_extra,
        );
    }

    fn configure_full(&self, endpoint: &str, projects: &[&str], tags: &str, registry_extra: &str) {
        let projects: Vec<String> = projects.iter().map(|p| format!("{{name: {p}}}")).collect();
        let text = format!(
            "{}  tags: {tags}\n{registry_extra}\
             projects: [{}]\nauth: {{hs256_secret: 0123456789abcdef0123456789abcdef}}\n",
            support::ecr_yaml(Some(endpoint)),
            projects.join(", ")
        );
        std::fs::write(self.dir.path().join("default.yaml"), text).unwrap();
    }

    /// Rewrites the written config with `edit`.
    fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let path = self.dir.path().join("default.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, edit(text)).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = support::rise_registry_as_admin(self.dir.path());
        cmd.args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and insists on the exit code.
    fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn plan_json(&self) -> Value {
        serde_json::from_str(&self.expect(&["plan", "--json"], 0)).unwrap()
    }

    fn action_kinds(&self) -> Vec<String> {
        self.plan_json()["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap().to_string())
            .collect()
    }

    async fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.emulator.admin_config().await)
    }

    async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.emulator.admin_config().await)
    }

    fn arn(name: &str) -> String {
        format!("arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{name}")
    }

    async fn tags(&self, name: &str) -> Vec<(String, String)> {
        let mut tags: Vec<_> = self
            .ecr()
            .await
            .list_tags_for_resource()
            .resource_arn(Self::arn(name))
            .send()
            .await
            .unwrap()
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect();
        tags.sort();
        tags
    }

    async fn repository_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ecr()
            .await
            .describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.repository_name)
            .filter(|n| n != LOCK)
            .collect();
        names.sort();
        names
    }
}

/// The apply lock's repository under the tests' prefix `rise/`: listed
/// apart from the projects' by the helpers, checked by its own tests.
const LOCK: &str = "rise/rise-registry/apply-lock";

impl Account {
    /// Replaces the controller role's trust policy by hand, as someone in
    /// the console would.
    async fn set_trust_by_hand(&self, trust: &Value) {
        self.iam()
            .await
            .update_assume_role_policy()
            .role_name("rise-backend")
            .policy_document(trust.to_string())
            .send()
            .await
            .unwrap();
    }

    /// Adds `statement` to the push role's `rise-push` policy by hand.
    async fn add_push_statement_by_hand(&self, statement: Value) {
        let iam = self.iam().await;
        let current = iam
            .get_role_policy()
            .role_name("rise-backend-ecr-push")
            .policy_name("rise-push")
            .send()
            .await
            .unwrap();
        let mut doc =
            rise_registry::reconcile::aws::policy_json(&current.policy_document, "a policy")
                .unwrap();
        doc["Statement"].as_array_mut().unwrap().push(statement);
        iam.put_role_policy()
            .role_name("rise-backend-ecr-push")
            .policy_name("rise-push")
            .policy_document(doc.to_string())
            .send()
            .await
            .unwrap();
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn an_empty_account_converges_and_stays_converged() {
    let account = Account::new();
    account.configure(&["a", "b"], "");
    let plan = account.expect(&["plan", "--detailed-exitcode"], 2);
    snapshot!("reconcile_empty_account_plan", plan);
    let applied = account.expect(&["apply", "--auto-approve"], 0);
    assert!(
        applied.contains("Apply complete: 6 done, 0 failed."),
        "{applied}"
    );
    assert_eq!(
        account.expect(&["plan", "--detailed-exitcode"], 0),
        "No changes. AWS matches the configuration.\n"
    );
    // A plan with nothing to do only reads: per role get, list and one
    // policy (6), the registry's scanning configuration (1), one page of
    // repositories (1), one page of the bulk tag read (1), and lifecycle
    // per repository; the emulator's bulk read lists no ECR repository, so
    // here tags are read per repository too: 8 + pages + 2n
    // (bulk_tag_reads_* below has the bulk read answering).
    let out = account.run(&["-v", "plan"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("reads=13 writes=0"), "{log}");
    let again = account.expect(&["apply", "--auto-approve"], 0);
    assert_eq!(
        again, "No changes. AWS matches the configuration.\n",
        "a second apply changes nothing"
    );
    assert_eq!(
        account.tags("rise/a").await,
        pairs(&[
            ("rise:managed", "true"),
            ("rise:project", "a"),
            ("rise:tag-keys", "team"),
            ("team", "platform")
        ])
    );
}

/// The operator guide's production path, "With EKS + IRSA": the controller
/// role trusts one service account of a cluster whose OIDC provider ARN
/// has the length EKS gives it (well past any one-line width), and the
/// plan shows that trust in every format before apply makes it.
#[tokio::test]
async fn an_irsa_setup_with_a_real_length_provider_plans_applies_and_converges() {
    let account = Account::new();
    let issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    let provider = format!("arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{issuer}");
    assert!(provider.len() > 100, "a real EKS provider ARN: {provider}");
    account
        .iam()
        .await
        .create_open_id_connect_provider()
        .url(format!("https://{issuer}"))
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
        .send()
        .await
        .unwrap();
    account.configure(
        &["my-app"],
        &format!(
            "  irsa:\n    oidc_provider_arn: {provider}\n    namespace: rise-system\n    \
             service_account: rise-backend\n"
        ),
    );
    // Condition values are sets, shown as lists like `Action`.
    let sub = format!("\"{issuer}:sub\": [\"system:serviceaccount:rise-system:rise-backend\"],");
    let aud = format!("\"{issuer}:aud\": [\"sts.amazonaws.com\"],");

    let text = account.expect(&["plan", "--detailed-exitcode"], 2);
    let markdown = account.expect(&["plan", "--markdown"], 0);
    for (format, plan) in [("text", &text), ("Markdown", &markdown)] {
        for shown in [&format!("\"{provider}\""), &sub, &aud] {
            assert!(
                plan.contains(shown.as_str()),
                "{format} plan lacks {shown}:\n{plan}"
            );
        }
        assert!(
            plan.contains(&format!("tokens of {provider} may now assume rise-backend")),
            "{format} plan lacks the trust's meaning:\n{plan}"
        );
    }
    let json = account.plan_json();
    let controller = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "create_role" && a["role"] == "controller")
        .unwrap_or_else(|| panic!("no controller role in {json:#}"));
    let statement = &controller["trust"]["Statement"][0];
    assert_eq!(statement["Principal"]["Federated"], provider.as_str());
    assert_eq!(
        statement["Condition"]["StringEquals"][format!("{issuer}:sub")],
        "system:serviceaccount:rise-system:rise-backend"
    );
    assert_eq!(
        statement["Condition"]["StringEquals"][format!("{issuer}:aud")],
        "sts.amazonaws.com"
    );
    let meaning = controller["meanings"][0]["text"].as_str().unwrap();
    assert!(
        meaning.contains(&format!(
            "{issuer}:sub = system:serviceaccount:rise-system:rise-backend"
        )),
        "{meaning}"
    );

    let applied = account.expect(&["apply", "--auto-approve"], 0);
    assert!(applied.contains("Apply complete: "), "{applied}");
    assert!(applied.contains(" 0 failed."), "{applied}");
    assert_eq!(
        account.expect(&["plan", "--detailed-exitcode"], 0),
        "No changes. AWS matches the configuration.\n"
    );
    let role = account
        .iam()
        .await
        .get_role()
        .role_name("rise-backend")
        .send()
        .await
        .unwrap();
    let trust = role.role.unwrap().assume_role_policy_document.unwrap();
    let trust = percent_encoding::percent_decode_str(&trust).decode_utf8_lossy();
    assert!(trust.contains(&provider), "{trust}");
}

/// Policies as a hand edit in the console leaves them: a trust policy whose
/// one statement is an object without `Sid` that trusts anyone under a
/// condition, and an inline policy with a 2,000-character condition value
/// and a right-to-left override. plan shows each in full, the override
/// escaped, in every format, and apply puts the configured ones back.
#[tokio::test]
async fn hand_edited_policies_are_shown_whole_and_put_back() {
    let account = Account::new();
    account.configure(&["a"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    account
        .set_trust_by_hand(&serde_json::json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT_ID}}}}))
        .await;
    let long = format!("repo:example/{}:ref:refs/heads/main", "x".repeat(2000));
    account
        .add_push_statement_by_hand(serde_json::json!({
            "Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*",
            "Condition": {"StringLike": {"aws:PrincipalTag/team": [long, "ci-\u{202e}nimda"]}}}))
        .await;

    let text = account.expect(&["plan", "--detailed-exitcode"], 2);
    let markdown = account.expect(&["plan", "--markdown"], 0);
    for (format, plan) in [("text", &text), ("Markdown", &markdown)] {
        assert!(
            plan.contains(&format!("\"{long}\",")),
            "{format} plan cuts the long value"
        );
        assert!(plan.contains(r#""ci-\u202enimda","#), "{format}:\n{plan}");
        assert!(
            !plan.contains('\u{202e}'),
            "{format} plan holds a raw override"
        );
        assert!(plan.contains(r#""Principal": "*","#), "{format}:\n{plan}");
        assert!(
            plan.contains("anyone"),
            "{format} plan says who loses the trust:\n{plan}"
        );
    }
    let json = account.plan_json();
    let kinds: Vec<&str> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(kinds, ["update_trust", "put_role_policy"], "{json:#}");
    assert_eq!(json["actions"][0]["before"]["Statement"]["Principal"], "*");

    account.expect(&["apply", "--auto-approve"], 0);
    assert_eq!(
        account.expect(&["plan", "--detailed-exitcode"], 0),
        "No changes. AWS matches the configuration.\n"
    );
}

/// An inline policy that does not read as JSON (IAM refuses to store one,
/// so only a broken endpoint hands one out) stops plan and apply with an
/// error naming the policy and its role, before anything is changed.
#[tokio::test]
async fn a_policy_that_is_not_json_is_an_error_naming_its_role() {
    use support::throttle::ThrottlingProxy;
    let account = Account::new();
    account.configure(&["a"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    let proxy = ThrottlingProxy::garbling_policies(account.emulator.addr);
    account.configure_at(&proxy.url(), &["a", "b"], "");
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let out = account.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let named = |policy: &str, role: &str| {
            stderr.contains(&format!(
                "IAM returned inline policy {policy} of role {role} as a document that is not JSON"
            ))
        };
        assert!(
            named("rise-controller", "rise-backend") || named("rise-push", "rise-backend-ecr-push"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(
        account.repository_names().await,
        ["rise/a"],
        "nothing was applied"
    );
}

#[tokio::test]
async fn drift_is_shown_exactly_and_repaired() {
    let account = Account::new();
    account.configure(&["a", "b"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    let ecr = account.ecr().await;
    ecr.untag_resource()
        .resource_arn(Account::arn("rise/a"))
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    ecr.put_image_tag_mutability()
        .repository_name("rise/b")
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    ecr.delete_lifecycle_policy()
        .repository_name("rise/a")
        .send()
        .await
        .unwrap();
    account
        .set_trust_by_hand(&serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
            "Action": "sts:AssumeRole"}]}))
        .await;
    account
        .add_push_statement_by_hand(serde_json::json!(
            {"Effect": "Allow", "Action": "ecr:DeleteRepository", "Resource": "*"}))
        .await;

    let plan = account.expect(&["plan", "--detailed-exitcode"], 2);
    snapshot!("reconcile_drift_plan", plan);
    assert_eq!(
        account.action_kinds(),
        [
            "update_trust",
            "put_role_policy",
            "update_repository",
            "set_tags",
            "update_repository"
        ]
    );
    snapshot!(
        "reconcile_drift_plan_json",
        serde_json::to_string_pretty(&account.plan_json()).unwrap()
    );
    // The same plan for a pull request: changes marked in diff blocks,
    // and `--detailed-exitcode` still says there are changes.
    let markdown = account.expect(&["plan", "--markdown", "--detailed-exitcode"], 2);
    assert!(
        markdown.starts_with("### rise-registry plan\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("\n```diff\n")
            && markdown.contains("**⚠ widens access:** trust: arn:aws:iam::123456789012:root may now assume rise-backend"),
        "{markdown}"
    );
    account.expect(&["apply", "--auto-approve"], 0);
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

#[tokio::test]
async fn removed_projects_are_orphaned_deleted_or_brought_back_and_strangers_left_alone() {
    let account = Account::new();
    account.configure(&["a", "b"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    let ecr = account.ecr().await;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    ecr.create_repository()
        .repository_name("rise/handmade")
        .tags(tag("owner", "ops"))
        .send()
        .await
        .unwrap();
    ecr.create_repository()
        .repository_name("elsewhere/a")
        .tags(tag("rise:managed", "true"))
        .send()
        .await
        .unwrap();

    // b removed: orphaned, its images kept; the strangers are reported or ignored.
    account.configure(&["a"], "");
    let plan = account.expect(&["plan"], 0);
    assert!(
        plan.contains("orphan") && plan.contains("not managed (left alone): rise/handmade"),
        "{plan}"
    );
    assert!(!plan.contains("elsewhere"), "{plan}");
    account.expect(&["apply", "--auto-approve"], 0);
    assert!(
        account
            .tags("rise/b")
            .await
            .contains(&("rise:orphaned".into(), "true".into()))
    );

    // b comes back: un-orphaned.
    account.configure(&["a", "b"], "");
    assert_eq!(account.action_kinds(), ["unorphan"]);
    account.expect(&["apply", "--auto-approve"], 0);
    assert!(
        !account
            .tags("rise/b")
            .await
            .iter()
            .any(|(k, _)| k == "rise:orphaned")
    );

    // A project claims the hand-made repository: adopted, its tag kept
    // (its first lifecycle policy is a reviewed change).
    account.configure(&["a", "b", "handmade"], "");
    assert_eq!(account.action_kinds()[0], "adopt");
    account.expect(&["apply", "--auto-approve", "--allow-destroy"], 0);
    let tags = account.tags("rise/handmade").await;
    assert!(
        tags.contains(&("rise:managed".into(), "true".into()))
            && tags.contains(&("owner".into(), "ops".into()))
    );

    // With auto_remove, a removed project's repository is deleted; nothing
    // outside the prefix is ever touched.
    account.configure(&["a", "handmade"], "  auto_remove: true\n");
    let kinds = account.action_kinds();
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("delete_repository"),
        "{kinds:?}"
    );
    account.expect(&["apply", "--auto-approve"], 0);
    assert_eq!(
        account.repository_names().await,
        ["elsewhere/a", "rise/a", "rise/handmade"]
    );
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// Tags someone else put on a repository stay: rise-registry removes only
/// the keys it recorded in `rise:tag-keys` when it set them.
#[tokio::test]
async fn adopted_and_managed_repositories_keep_tags_rise_registry_did_not_set() {
    let account = Account::new();
    let ecr = account.ecr().await;
    ecr.create_repository()
        .repository_name("rise/handmade")
        .tags(Tag::builder().key("owner").value("team-x").build().unwrap())
        .send()
        .await
        .unwrap();
    account.configure(&["a", "handmade"], "");
    // Adopting a repository made by hand gives it a first lifecycle policy,
    // which may expire its images: not without review.
    let out = account.run(&["apply", "--auto-approve"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("images expire in 1 repository (rise/handmade;")
            && stderr.contains("--allow-destroy"),
        "{stderr}"
    );
    account.expect(&["apply", "--auto-approve", "--allow-destroy"], 0);
    assert_eq!(
        account.expect(&["apply", "--auto-approve"], 0),
        "No changes. AWS matches the configuration.\n",
        "the adopted repository's own tag is not planned away"
    );
    // A tag added by hand to a repository rise-registry created stays too.
    ecr.tag_resource()
        .resource_arn(Account::arn("rise/a"))
        .tags(Tag::builder().key("cost").value("42").build().unwrap())
        .send()
        .await
        .unwrap();
    account.expect(&["plan", "--detailed-exitcode"], 0);

    // The config's tags change: the dropped one goes, the others stay.
    account.configure_tags(&["a", "handmade"], "{env: prod}", "");
    account.expect(&["apply", "--auto-approve"], 0);
    assert_eq!(
        account.tags("rise/handmade").await,
        pairs(&[
            ("env", "prod"),
            ("owner", "team-x"),
            ("rise:managed", "true"),
            ("rise:project", "handmade"),
            ("rise:tag-keys", "env"),
        ])
    );
    assert_eq!(
        account.tags("rise/a").await,
        pairs(&[
            ("cost", "42"),
            ("env", "prod"),
            ("rise:managed", "true"),
            ("rise:project", "a"),
            ("rise:tag-keys", "env"),
        ])
    );
    // No tags in config: the record goes as well.
    account.configure_tags(&["a", "handmade"], "{}", "");
    account.expect(&["apply", "--auto-approve"], 0);
    assert_eq!(
        account.tags("rise/a").await,
        pairs(&[
            ("cost", "42"),
            ("rise:managed", "true"),
            ("rise:project", "a")
        ])
    );
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// The controller role's own credentials suffice for the repositories:
/// `--scope repositories` (or `registry.manage_roles: false`) makes no IAM
/// request at all, and every ECR operation it uses is one the controller
/// policy grants. The emulator runs with `--iam strict`, so IAM refuses the
/// controller role (it checks identity policies for IAM and STS, though not
/// for ECR: the proxy's list of ECR operations is checked against the
/// policy instead).
#[tokio::test]
async fn the_controller_role_manages_the_repositories_without_any_iam_call() {
    let account = Account::new();
    account.configure(&["a", "b"], "");
    // An administrator (or Terraform) makes the roles.
    account.expect(&["apply", "--auto-approve", "--scope", "roles"], 0);
    assert!(account.repository_names().await.is_empty(), "roles only");
    let creds = aws_sdk_sts::Client::new(&account.emulator.admin_config().await)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/rise-backend"))
        .role_session_name("platform-pipeline")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let proxy = support::throttle::ThrottlingProxy::start(account.emulator.addr, 0);
    account.configure_at(&proxy.url(), &["a", "b"], "");
    let as_controller = |args: &[&str]| {
        let mut cmd = account.command(args);
        cmd.env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .env("AWS_SESSION_TOKEN", &creds.session_token);
        cmd.output().unwrap()
    };

    // The default scope needs IAM: a clear error with the way out.
    let out = as_controller(&["plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("iam:GetRole") && stderr.contains("--scope repositories"),
        "{stderr}"
    );

    let iam_before = proxy.requests_to("iam");
    let out = as_controller(&["apply", "--auto-approve", "--scope", "repositories"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(account.repository_names().await, ["rise/a", "rise/b"]);
    // registry.manage_roles: false makes that scope the default.
    account.configure_at(&proxy.url(), &["a", "b", "c"], "  manage_roles: false\n");
    let out = as_controller(&["apply", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_controller(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        proxy.requests_to("iam"),
        iam_before,
        "no IAM request at all"
    );
    assert!(proxy.requests_to("ecr") > 0);

    let policy = account
        .iam()
        .await
        .get_role_policy()
        .role_name("rise-backend")
        .policy_name("rise-controller")
        .send()
        .await
        .unwrap();
    let policy =
        rise_registry::reconcile::aws::policy_json(&policy.policy_document, "a policy").unwrap();
    let granted: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            _ => vec![],
        })
        .collect();
    for op in proxy.ecr_operations() {
        assert!(
            granted.contains(&format!("ecr:{op}")),
            "ecr:{op} is used but the controller policy does not grant it"
        );
    }
    // The administrator's full plan agrees: nothing left to do.
    account.configure(&["a", "b", "c"], "");
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// Where the registry's scanning configuration decides which repositories
/// are scanned, the deprecated repository flag is neither shown nor
/// applied, and the plan says so in one line.
#[tokio::test]
async fn registry_scanning_configuration_replaces_the_repository_flag() {
    use aws_sdk_ecr::types::{
        RegistryScanningRule, ScanFrequency, ScanType, ScanningRepositoryFilter,
        ScanningRepositoryFilterType,
    };
    let account = Account::new();
    account.configure(&["a"], "");
    let ecr = account.ecr().await;
    let rule = RegistryScanningRule::builder()
        .scan_frequency(ScanFrequency::ScanOnPush)
        .repository_filters(
            ScanningRepositoryFilter::builder()
                .filter("*")
                .filter_type(ScanningRepositoryFilterType::Wildcard)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    ecr.put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .rules(rule)
        .send()
        .await
        .unwrap();
    let plan = account.expect(&["plan"], 0);
    assert!(
        plan.contains("\nScanning: the registry's scanning configuration (BASIC scanning, 1 rule) decides which repositories are scanned, so registry.scan_on_push is neither shown nor applied.\n"),
        "{plan}"
    );
    assert!(!plan.contains("scan_on_push: true"), "{plan}");
    account.expect(&["apply", "--auto-approve"], 0);
    let scan_on_push = || async {
        ecr.describe_repositories()
            .repository_names("rise/a")
            .send()
            .await
            .unwrap()
            .repositories
            .unwrap()[0]
            .image_scanning_configuration
            .as_ref()
            .is_some_and(|s| s.scan_on_push)
    };
    assert!(!scan_on_push().await, "the repository flag was not set");
    account.expect(&["plan", "--detailed-exitcode"], 0);

    // Back to a registry nobody configured: the flag applies again.
    ecr.put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .send()
        .await
        .unwrap();
    let plan = account.plan_json();
    assert_eq!(
        plan["actions"][0]["changes"][0]["attribute"], "scan_on_push",
        "{plan}"
    );
    assert!(plan.get("registry_scanning").is_none(), "{plan}");
    account.expect(&["apply", "--auto-approve"], 0);
    assert!(scan_on_push().await);
}

/// Role tags are read back and follow the config like repository tags:
/// set by `registry.tags`, removed when the config drops them, and a tag
/// someone else put on the role stays.
#[tokio::test]
async fn role_tags_follow_the_config_and_keep_tags_others_set() {
    let account = Account::new();
    account.configure(&["a"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    let iam = account.iam().await;
    let tag = |k: &str, v: &str| {
        aws_sdk_iam::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .unwrap()
    };
    iam.tag_role()
        .role_name("rise-backend")
        .tags(tag("owner", "security"))
        .tags(tag("team", "drifted"))
        .send()
        .await
        .unwrap();
    let plan = account.expect(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.contains("~ role rise-backend (controller): tags + team = platform\n"),
        "{plan}"
    );
    account.configure_tags(&["a"], "{env: prod}", "");
    account.expect(&["apply", "--auto-approve"], 0);
    let role_tags = |name: &'static str| {
        let iam = iam.clone();
        async move {
            let mut tags: Vec<(String, String)> = iam
                .list_role_tags()
                .role_name(name)
                .send()
                .await
                .unwrap()
                .tags
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect();
            tags.sort();
            tags
        }
    };
    assert_eq!(
        role_tags("rise-backend").await,
        pairs(&[
            ("env", "prod"),
            ("owner", "security"),
            ("rise:tag-keys", "env")
        ])
    );
    assert_eq!(
        role_tags("rise-backend-ecr-push").await,
        pairs(&[("env", "prod"), ("rise:tag-keys", "env")])
    );
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// A role ARN with a path makes the role at that path, so its real ARN is
/// the one the push role's trust and the controller's policy name; a role
/// of that name found at another path is an error, not a silent mismatch.
#[tokio::test]
async fn roles_are_made_at_the_path_of_their_arn_and_another_path_is_an_error() {
    let account = Account::new();
    account.configure(&["a"], "");
    account.edit_config(|t| t.replace(":role/rise-backend", ":role/ops/rise-backend"));
    account.expect(&["apply", "--auto-approve"], 0);
    let iam = account.iam().await;
    for name in ["rise-backend", "rise-backend-ecr-push"] {
        let role = iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .role
            .unwrap();
        assert_eq!(
            role.arn,
            format!("arn:aws:iam::{ACCOUNT_ID}:role/ops/{name}")
        );
        assert_eq!(role.path, "/ops/");
    }
    account.expect(&["plan", "--detailed-exitcode"], 0);

    account.edit_config(|t| t.replace(":role/ops/", ":role/team/"));
    let out = account.run(&["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "role rise-backend exists at path /ops/ (arn:aws:iam::{ACCOUNT_ID}:role/ops/rise-backend), but registry.role_arn is arn:aws:iam::{ACCOUNT_ID}:role/team/rise-backend (path /team/)"
        )) && stderr.contains("IAM cannot move a role"),
        "{stderr}"
    );
}

/// On a fresh account, IAM answers `MalformedPolicyDocument: Invalid
/// principal in policy` for a while to a policy that names a role created
/// moments before (the emulator never does; the proxy answers it for the
/// first three writes naming the controller role). Apply waits it out in
/// one run and says so.
#[tokio::test]
async fn apply_waits_for_iam_to_know_a_new_role_and_says_so() {
    let account = Account::new();
    let controller = format!("arn:aws:iam::{ACCOUNT_ID}:role/rise-backend");
    let proxy = support::throttle::ThrottlingProxy::invalid_principal(
        account.emulator.addr,
        &controller,
        3,
    );
    account.configure_at(&proxy.url(), &["a"], "");
    let started = std::time::Instant::now();
    let out = account.expect(&["apply", "--auto-approve"], 0);
    assert_eq!(
        proxy.throttled(),
        3,
        "the push role's creation was refused three times"
    );
    assert!(
        out.contains(
            "done   create role rise-backend-ecr-push (IAM did not know a role the policy names yet"
        ) && out.contains("succeeded after 3 retries"),
        "{out}"
    );
    assert!(out.contains("Apply complete: 5 done, 0 failed."), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

#[tokio::test]
async fn a_saved_plan_is_refused_once_the_account_changed() {
    let account = Account::new();
    account.configure(&["a"], "");
    let file = account.dir.path().join("plan.json");
    let file = file.to_str().unwrap();
    let out = account.run(&["plan", "--out", file]);
    assert_eq!(out.status.code(), Some(0));
    // The printed next step works as pasted: it carries the config dir and
    // run mode this run used.
    let me = format!(
        "rise-registry --config-dir {} --run-mode default",
        account.dir.path().display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("`{me} apply {file}` applies exactly it")),
        "{stdout}"
    );
    // Someone creates a repository under the prefix after the plan was made.
    account
        .ecr()
        .await
        .create_repository()
        .repository_name("rise/late")
        .send()
        .await
        .unwrap();
    let out = account.run(&["apply", file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the account changed since")
            && stderr.contains(&format!("run `{me} plan --out {file}` again")),
        "{stderr}"
    );
    assert_eq!(
        account.repository_names().await,
        ["rise/late"],
        "nothing applied"
    );
    // A fresh plan applies.
    account.expect(&["plan", "--out", file], 0);
    account.expect(&["apply", file], 0);
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

#[tokio::test]
async fn apply_without_a_terminal_or_approval_changes_nothing() {
    let account = Account::new();
    account.configure(&["a"], "");
    let out = account.run(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no terminal to ask on"));
    assert!(account.repository_names().await.is_empty());
}

/// `apply --json` at a terminal: the plan and the question go to the
/// terminal (stderr), stdout carries only the JSON result. `script` gives
/// the command a real pseudo-terminal; stdout is redirected to a file
/// inside it, so what reaches the terminal is stderr alone.
#[tokio::test]
async fn apply_json_at_a_terminal_asks_on_stderr_and_keeps_stdout_json() {
    use std::io::Write;
    use std::process::Stdio;

    let account = Account::new();
    account.configure(&["a"], "");
    let stdout_file = account.dir.path().join("stdout.json");
    let inner = format!(
        "{} --config-dir {} --run-mode default apply --json > {}",
        env!("CARGO_BIN_EXE_rise-registry"),
        account.dir.path().display(),
        stdout_file.display()
    );
    // The admin's environment, which `script` passes on to the command.
    let admin = support::rise_registry_as_admin(account.dir.path());
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env_clear()
        .envs(admin.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().expect("script(1) from bsdutils runs");
    child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "terminal:\n{terminal}");
    assert!(
        terminal.contains("+ repository rise/a"),
        "the plan is shown:\n{terminal}"
    );
    assert!(terminal.contains("Apply these 5 actions?"), "{terminal}");
    let stdout = std::fs::read_to_string(&stdout_file).unwrap();
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}):\n{stdout}"));
    assert_eq!(result["applied"].as_array().unwrap().len(), 5, "{result}");
    // The one object also holds the plan it applied, in plan --json's shape.
    assert_eq!(result["plan"]["format_version"], 1, "{result}");
    assert_eq!(result["plan"]["actions"].as_array().unwrap().len(), 5);
    assert_eq!(result["not_started"], 0);
    assert_eq!(account.repository_names().await, ["rise/a"]);
}

#[test]
fn plan_needs_an_ecr_registry() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rise-registry"))
        .args([
            "--config-dir",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .to_str()
                .unwrap(),
            "plan",
        ])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("registry.type is `oci-client-auth`"));
}

#[tokio::test]
async fn a_thousand_projects_apply_and_plan_across_pages() {
    let account = Account::new();
    let names: Vec<String> = (0..1000).map(|i| format!("p{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure(&refs, "");
    let applied = account.expect(&["apply", "--auto-approve"], 0);
    assert!(
        applied.contains("Apply complete: 1004 done, 0 failed."),
        "{}",
        &applied[applied.len().saturating_sub(300)..]
    );
    assert_eq!(
        account.expect(&["plan", "--detailed-exitcode"], 0),
        "No changes. AWS matches the configuration.\n"
    );
    assert_eq!(
        account.repository_names().await.len(),
        100,
        "the API pages by 100: the plan read all ten pages"
    );
}

#[tokio::test]
async fn apply_killed_midway_converges_on_the_next_run() {
    let account = Account::new();
    let names: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure(&refs, "");
    let mut child = account
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed while it holds the apply lock and makes repositories.
    let waited = std::time::Instant::now();
    while !account
        .repository_names()
        .await
        .iter()
        .any(|n| n.starts_with("rise/k"))
    {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "apply never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        lock_claims(&account).await.len(),
        1,
        "the killed apply's claim stays"
    );
    let partial = account.plan_json();
    assert!(partial["changes"] == true, "killed before it finished");
    // Its process is gone from this machine: the claim is not waited out.
    account.expect(&["apply", "--auto-approve", "--lock-wait", "0"], 0);
    assert!(lock_claims(&account).await.is_empty());
    account.expect(&["plan", "--detailed-exitcode"], 0);
    let mut all = all_repositories(&account).await;
    all.dedup();
    assert_eq!(all.len(), 300, "nothing missing, nothing twice");
}

#[tokio::test]
async fn ctrl_c_stops_starting_actions_and_reports() {
    let account = Account::new();
    let names: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure(&refs, "");
    // Output to a file: a pipe nobody reads would block the plan's print.
    let log_path = account.dir.path().join("apply.out");
    let mut child = account
        .command(&["apply", "--auto-approve"])
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until actions are under way, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while account.repository_names().await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never started creating"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "{}",
        &stdout[stdout.len().saturating_sub(400)..]
    );
    assert!(
        stdout.contains("not started (interrupted)"),
        "{}",
        &stdout[stdout.len().saturating_sub(400)..]
    );
    assert!(
        account.repository_names().await.len() < 1000,
        "actions queued at the interrupt did not start"
    );
    account.expect(&["apply", "--auto-approve"], 0);
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// Repositories and roles outside what the config manages, for checking
/// that a faulty apply left them alone: `elsewhere/keep` outside the prefix
/// (even tagged managed) and `rise/handmade` under it without the tag.
async fn plant_strangers(account: &Account) -> Vec<(String, Vec<(String, String)>)> {
    let ecr = account.ecr().await;
    for (name, tags) in [
        (
            "elsewhere/keep",
            vec![("rise:managed", "true"), ("owner", "x")],
        ),
        ("rise/handmade", vec![("owner", "y")]),
    ] {
        ecr.create_repository()
            .repository_name(name)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                    .collect(),
            ))
            .send()
            .await
            .unwrap();
    }
    strangers(account).await
}

async fn strangers(account: &Account) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for name in ["elsewhere/keep", "rise/handmade"] {
        out.push((name.to_string(), account.tags(name).await));
    }
    out
}

/// Every repository name, across pages.
async fn all_repositories(account: &Account) -> Vec<String> {
    let mut all = Vec::new();
    let ecr = account.ecr().await;
    let mut pages = ecr.describe_repositories().into_paginator().send();
    while let Some(page) = pages.next().await {
        all.extend(
            page.unwrap()
                .repositories
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.repository_name)
                .filter(|n| n != LOCK),
        );
    }
    all.sort();
    all
}

#[tokio::test]
async fn apply_converges_after_aws_dies_midway_and_leaves_strangers_alone() {
    let mut account = Account::persistent();
    let before = plant_strangers(&account).await;
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure(&refs, "");
    let child = account
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Midway: once apply holds its lock and has begun making repositories.
    let waited = std::time::Instant::now();
    while !account
        .repository_names()
        .await
        .iter()
        .any(|n| n.starts_with("rise/f"))
    {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "apply never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    account.emulator.stop();
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "apply gave up in bounded time"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!(
        "apply with AWS gone gave up after {:?}:\n{}\n{}",
        started.elapsed(),
        stdout.lines().rev().take(4).collect::<Vec<_>>().join("\n"),
        stderr.lines().take(6).collect::<Vec<_>>().join("\n")
    );
    assert!(
        stdout.contains("not started (AWS unreachable)") && stdout.contains("could not be reached"),
        "the outage is reported, and the rest not attempted:\n{stdout}\n{stderr}"
    );

    account.emulator.restart();
    // Its claim could not be released with AWS gone; its process is gone.
    account.expect(&["apply", "--auto-approve", "--lock-wait", "0"], 0);
    account.expect(&["plan", "--detailed-exitcode"], 0);
    let all = all_repositories(&account).await;
    let managed: Vec<&String> = all.iter().filter(|n| n.starts_with("rise/f")).collect();
    assert_eq!(managed.len(), 300, "nothing missing, nothing twice");
    assert_eq!(all.len(), 302, "{all:?}");
    assert_eq!(strangers(&account).await, before, "strangers untouched");
}

#[tokio::test]
async fn apply_under_throttling_retries_and_converges() {
    let account = Account::new();
    let before = plant_strangers(&account).await;
    let proxy = support::throttle::ThrottlingProxy::start(account.emulator.addr, 25);
    let names: Vec<String> = (0..60).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure_at(&proxy.url(), &refs, "");
    // Every run either finishes or says which actions failed; re-runs pick
    // up what is left.
    let mut runs = 0;
    loop {
        runs += 1;
        let out = account.run(&["apply", "--auto-approve"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        match out.status.code() {
            Some(0) => break,
            Some(1) => assert!(
                stderr.contains("Throttl")
                    || String::from_utf8_lossy(&out.stdout).contains("Throttl"),
                "a failure names throttling:\n{stderr}"
            ),
            other => panic!("apply exited {other:?}: {stderr}"),
        }
        assert!(runs < 6, "no convergence after {runs} runs");
    }
    let throttled = proxy.throttled();
    assert!(throttled > 10, "throttling happened ({throttled} calls)");
    eprintln!(
        "throttled {throttled} of {} calls; converged after {runs} apply run(s)",
        throttled + proxy.forwarded()
    );
    // Checked without the proxy: the account is exactly as configured.
    account.configure(&refs, "");
    account.expect(&["plan", "--detailed-exitcode"], 0);
    let all = all_repositories(&account).await;
    assert_eq!(all.iter().filter(|n| n.starts_with("rise/t")).count(), 60);
    assert_eq!(strangers(&account).await, before, "strangers untouched");
}

/// `rise-registry ARGS` on a pseudo-terminal (util-linux `script`), with
/// `TERM` as given: everything it writes to its terminal, stdout and
/// stderr together.
fn on_a_terminal(account: &Account, args: &str, term: &str) -> String {
    on_a_terminal_with(account, args, term, true)
}

/// `rise-registry ARGS` on a pseudo-terminal, typing `input`: everything
/// written to the terminal, whatever the exit code.
fn answering_at_a_terminal(account: &Account, args: &str, input: &str) -> String {
    use std::io::Write;
    let cmd = account.command(&[]);
    let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.push(args.to_string());
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (apt-get install bsdutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
}

/// As [`on_a_terminal`]; without `no_color`, `NO_COLOR` is not set.
fn on_a_terminal_with(account: &Account, args: &str, term: &str, no_color: bool) -> String {
    let cmd = account.command(&[]);
    let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.push(args.to_string());
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter(|(k, _)| no_color || *k != "NO_COLOR")
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env("TERM", term)
        .stdin(std::process::Stdio::null());
    let out = script
        .output()
        .expect("util-linux `script` runs (apt-get install bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{args}\n{text}");
    text
}

#[tokio::test]
async fn progress_is_drawn_on_a_terminal_only_and_cleared() {
    let account = Account::new();
    account.configure(&["a", "b", "c"], "");
    let applied = on_a_terminal(&account, "apply --auto-approve", "xterm");
    assert!(applied.contains("applying ["), "{applied:?}");
    assert!(applied.contains("] 7/7"), "{applied:?}");
    assert!(
        !applied.contains("0/0"),
        "no count before the total is known"
    );
    // Cleared: the last thing on the line is the erase, not the count.
    assert!(applied.contains("\x1b[2K"), "{applied:?}");
    assert!(applied.contains("Apply complete: 7 done, 0 failed."));
    let planned = on_a_terminal(&account, "plan", "xterm");
    assert!(planned.contains("reading repositories ["), "{planned:?}");
    assert!(planned.contains("] 3/3"), "{planned:?}");
    // The progress line is never coloured, and with NO_COLOR neither is
    // the plan; without it, the plan on a terminal is.
    account.configure(&["a", "b", "c", "d"], "");
    let planned = on_a_terminal(&account, "plan", "xterm");
    assert!(planned.contains("+ repository rise/d"), "{planned:?}");
    assert!(!planned.contains("\x1b[3"), "{planned:?}");
    let coloured = on_a_terminal_with(&account, "plan", "xterm", false);
    assert!(
        coloured.contains("\x1b[32m+\x1b[0m repository rise/d"),
        "{coloured:?}"
    );
    let line_start = coloured.find("reading repositories [").unwrap();
    let line = &coloured[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    assert!(!line.contains("\x1b[3"), "{line:?}");
    account.configure(&["a", "b", "c"], "");

    // A terminal that cannot redraw, and --json, get nothing extra.
    let dumb = on_a_terminal(&account, "plan", "dumb");
    assert!(!dumb.contains("reading repositories"), "{dumb:?}");
    let json = on_a_terminal(&account, "plan --json", "xterm");
    assert!(!json.contains("reading repositories"), "{json:?}");
    // Neither does a stderr that is not a terminal.
    let out = account.run(&["plan"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With the Resource Groups Tagging API answering (the proxy answers it
/// from the emulator's tags), a plan reads tags in bulk: no
/// `ListTagsForResource` for managed repositories, one request per
/// repository (its lifecycle policy) plus pages, and tag drift still shows.
/// A repository the bulk read does not list (not tagged managed) is read
/// on its own, so adoption still sees its tags.
#[tokio::test]
async fn bulk_tag_reads_cost_one_request_per_repository_and_still_see_drift() {
    use support::throttle::{Tagging, ThrottlingProxy};
    let account = Account::new();
    let proxy = ThrottlingProxy::tagging(account.emulator.addr, Tagging::Answer);
    let names: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure_at(&proxy.url(), &refs, "");
    account.expect(&["apply", "--auto-approve"], 0);

    let ecr_before = proxy.requests_to("ecr");
    let out = account.run(&["-v", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    // 6 IAM + scanning configuration + 1 page of repositories + 1 page
    // of tags + 5 lifecycle policies.
    assert!(log.contains("reads=14 writes=0"), "{log}");
    assert_eq!(proxy.requests_to("ecr") - ecr_before, 7);
    assert_eq!(
        proxy.requests_to("tagging"),
        2,
        "one page per observation (apply, plan)"
    );
    // The plan's 7 ECR requests above hold no tag read (apply's tag reads
    // were its lock's, one repository's).

    // Drift in a tag, made behind the tool's back, is in the bulk answer.
    let ecr = account.ecr().await;
    ecr.tag_resource()
        .resource_arn(format!(
            "arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/rise/b3"
        ))
        .tags(
            aws_sdk_ecr::types::Tag::builder()
                .key("rise:project")
                .value("other")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // An untagged repository under the prefix that a project claims: the
    // bulk read does not list it, its own read shows it unmanaged.
    ecr.create_repository()
        .repository_name("rise/b5")
        .send()
        .await
        .unwrap();
    account.configure_at(&proxy.url(), &["b0", "b1", "b2", "b3", "b4", "b5"], "");
    let plan = account.expect(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.contains("rise/b3") && plan.contains("rise/b5"),
        "{plan}"
    );
    assert!(!plan.contains("Reads:"), "{plan}");
    account.expect(&["apply", "--auto-approve", "--allow-destroy"], 0);
    account.expect(&["plan", "--detailed-exitcode"], 0);
    let has = |tags: Vec<(String, String)>, k: &str, v: &str| {
        tags.contains(&(k.to_string(), v.to_string()))
    };
    assert!(has(account.tags("rise/b3").await, "rise:project", "b3"));
    assert!(has(account.tags("rise/b5").await, "rise:managed", "true"));
}

/// Where the bulk read is denied, tags are read per repository, the plan
/// is the same, and one line says why.
#[tokio::test]
async fn a_denied_bulk_tag_read_falls_back_and_says_so() {
    use support::throttle::{Tagging, ThrottlingProxy};
    let account = Account::new();
    let proxy = ThrottlingProxy::tagging(account.emulator.addr, Tagging::Deny);
    account.configure_at(&proxy.url(), &["a", "b"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    let ecr_before = proxy.requests_to("ecr");
    let plan = account.expect(&["plan", "--detailed-exitcode"], 0);
    // Scanning configuration, a page of repositories, and per repository
    // its lifecycle policy and its tags.
    assert_eq!(proxy.requests_to("ecr") - ecr_before, 2 + 2 * 2);
    assert_eq!(
        plan,
        "No changes. AWS matches the configuration.\n\nReads: tags read one repository at a time: \
         the bulk read (tag:GetResources) was refused (AccessDeniedException: User: \
         arn:aws:sts::123456789012:assumed-role/rise-backend/plan is not authorized to perform: \
         tag:GetResources).\n"
    );
    let json = account.expect(&["plan", "--json"], 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        json["tag_reads"]
            .as_str()
            .is_some_and(|n| n.contains("tag:GetResources")),
        "{json}"
    );
}

/// An endpoint that hands the bulk tag read the same page token again
/// would keep plan paging forever: it stops at the repeat with an error
/// that says so.
#[tokio::test]
async fn a_tag_read_that_pages_in_a_circle_is_an_error() {
    use support::throttle::{Tagging, ThrottlingProxy};
    let account = Account::new();
    let proxy = ThrottlingProxy::tagging(account.emulator.addr, Tagging::Loop);
    account.configure_at(&proxy.url(), &["a"], "");
    let out = account.run(&["plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reading repository tags in bulk")
            && stderr.contains("GetResources returned a pagination token it had returned before"),
        "{stderr}"
    );
    assert_eq!(
        proxy.requests_to("tagging"),
        2,
        "the first page and its repeat"
    );
}

/// Through a proxy that throttles every request above 40 a second, apply
/// backs its requests in flight off (from 16 to a few) instead of only
/// retrying, and converges in one run without a failed action.
#[tokio::test]
async fn apply_backs_off_its_concurrency_under_a_rate_limit() {
    use support::throttle::{Latency, Tagging, ThrottlingProxy};
    let account = Account::new();
    let proxy = ThrottlingProxy::aws_like(
        account.emulator.addr,
        Latency {
            delay: std::time::Duration::from_millis(5),
            rate: Some(40),
            tagging: Tagging::Answer,
            quotas: Vec::new(),
        },
    );
    let names: Vec<String> = (0..120).map(|i| format!("r{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure_at(&proxy.url(), &refs, "");
    let out = account.run(&["-v", "apply", "--auto-approve"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{log}");
    assert!(
        stdout.contains("Apply complete: 124 done, 0 failed."),
        "{stdout}"
    );
    assert!(proxy.throttled() > 0, "the rate limit was reached");
    let lowest: usize = log
        .rsplit("lowest_limit=")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lowest_limit in:\n{log}"));
    assert!(lowest < 16, "backed off to {lowest}:\n{log}");
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// With `auto_remove: true`, a config that loses its projects (a values
/// mistake) would delete every repository and its images: an unattended
/// `apply --auto-approve` deletes at most `registry.max_deletions` and
/// refuses more whole, changing nothing, until `--allow-destroy` says so.
#[tokio::test]
async fn an_unattended_apply_deletes_no_more_than_max_deletions() {
    let account = Account::new();
    let six = ["p1", "p2", "p3", "p4", "p5", "p6"];
    account.configure(&six, "  auto_remove: true\n  max_deletions: 5\n");
    account.expect(&["apply", "--auto-approve"], 0);
    account.configure(&[], "  auto_remove: true\n  max_deletions: 5\n");
    let out = account.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this plan deletes 6 repositories and their images")
            && stderr.contains("more than registry.max_deletions (5)")
            && stderr.contains("nothing was changed")
            && stderr.contains("apply --auto-approve --allow-destroy"),
        "{stderr}"
    );
    assert_eq!(all_repositories(&account).await.len(), 6, "nothing deleted");
    // Reviewed (at a terminal, or told so), it goes ahead.
    account.expect(&["apply", "--auto-approve", "--allow-destroy"], 0);
    assert!(all_repositories(&account).await.is_empty());
}

/// Reads the apply lock's claims as `(id, holder)`.
async fn lock_claims(account: &Account) -> Vec<(String, String)> {
    account
        .tags(LOCK)
        .await
        .into_iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix("rise:apply-lock/")?.to_string();
            Some((id, v.splitn(3, ':').nth(2).unwrap_or("").to_string()))
        })
        .collect()
}

/// Two applies started together (the hook Job and a CronJob run): one
/// takes the lock, the other says whom it waits for, then plans what the
/// first left (nothing) and changes nothing twice. The lock repository
/// never shows in a plan, and no claim is left behind.
#[tokio::test]
async fn two_applies_at_once_take_turns_under_the_apply_lock() {
    let account = Account::new();
    let names: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    account.configure(&refs, "");
    let spawn = |account: &Account| {
        account
            .command(&["--log-format", "json", "apply", "--auto-approve", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(&account), spawn(&account));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut planned = Vec::new();
    let mut waited = 0;
    for out in [&a, &b] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        planned.push(report["plan"]["actions"].as_array().unwrap().len());
        for line in stderr.lines() {
            let line: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if line["fields"]["message"] == "waiting for another apply to finish (the apply lock)" {
                assert!(
                    line["fields"]["holder"].as_str().unwrap().contains(" pid "),
                    "{line}"
                );
                waited += 1;
            }
        }
    }
    // The one that waited planned after the other had made everything.
    planned.sort_unstable();
    assert_eq!(planned[0], 0, "{planned:?}");
    assert!(planned[1] > 40, "{planned:?}");
    assert_eq!(waited, 1, "exactly one waited");
    assert_eq!(
        account.repository_names().await,
        names
            .iter()
            .map(|n| format!("rise/{n}"))
            .collect::<Vec<_>>()
    );
    assert!(lock_claims(&account).await.is_empty(), "released");
    let plan = account.plan_json();
    assert_eq!(plan["actions"], serde_json::json!([]));
    assert!(
        !plan.to_string().contains("apply-lock"),
        "the lock is no repository of a plan: {plan}"
    );
}

/// A claim someone else holds makes apply wait at most `--lock-wait`, then
/// fail naming the holder, having changed nothing; a claim that lapsed
/// (its holder was killed) is removed and does not stop anyone.
#[tokio::test]
async fn a_held_lock_stops_apply_and_a_lapsed_one_does_not() {
    let account = Account::new();
    account.configure(&["a"], "");
    account.expect(&["apply", "--auto-approve"], 0);
    account.configure(&["a", "b"], "");
    let ecr = account.ecr().await;
    let claim = |key: &str, value: String| {
        ecr.tag_resource()
            .resource_arn(Account::arn(LOCK))
            .tags(Tag::builder().key(key).value(value).build().unwrap())
            .send()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claim(
        "rise:apply-lock/feed",
        format!(
            "{}:{}:rise-rise-registry-reconcile-x1 pid 1",
            now * 1000,
            now + 600
        ),
    )
    .await
    .unwrap();
    let out = account.run(&["apply", "--auto-approve", "--lock-wait", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("another apply holds the apply lock (rise-rise-registry-reconcile-x1 pid 1")
            && stderr.contains("nothing was changed")
            && stderr.contains("--lock-wait"),
        "{stderr}"
    );
    assert_eq!(
        account.repository_names().await,
        ["rise/a"],
        "nothing changed"
    );
    // The holder was killed: its claim lapsed a minute ago.
    claim(
        "rise:apply-lock/feed",
        format!("{}:{}:gone pid 1", (now - 300) * 1000, now - 60),
    )
    .await
    .unwrap();
    account.expect(&["apply", "--auto-approve", "--lock-wait", "0"], 0);
    assert_eq!(account.repository_names().await, ["rise/a", "rise/b"]);
    assert!(
        lock_claims(&account).await.is_empty(),
        "{:?}",
        lock_claims(&account).await
    );
}

/// Lowering `max_image_count` expires images: an unattended apply refuses
/// it as it refuses mass deletion, naming the repositories, until
/// `--allow-destroy`; raising it goes ahead unattended.
#[tokio::test]
async fn an_unattended_apply_does_not_lower_a_lifecycle_limit() {
    let account = Account::new();
    account.configure(&["a", "b"], "  max_image_count: 100\n");
    account.expect(&["apply", "--auto-approve"], 0);
    account.configure(&["a", "b"], "  max_image_count: 10\n");
    let out = account.run(&["apply", "--auto-approve"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("images expire in 2 repositories (rise/a, rise/b;")
            && stderr.contains("keep the newest 10 images (was 100)")
            && stderr.contains("nothing was changed")
            && stderr.contains("--allow-destroy"),
        "{stderr}"
    );
    assert_eq!(
        account.action_kinds(),
        ["update_repository", "update_repository"]
    );
    // Asked at a terminal, the same warning stands above the question.
    let terminal = answering_at_a_terminal(&account, "apply", "no\n");
    assert!(
        terminal.contains(
            "Warning: this plan changes lifecycle policies so that images expire in 2 repositories"
        ) && terminal.contains("Apply these 2 actions?")
            && terminal.contains("apply cancelled"),
        "{terminal}"
    );
    account.expect(&["apply", "--auto-approve", "--allow-destroy"], 0);
    account.configure(&["a", "b"], "  max_image_count: 50\n");
    account.expect(&["apply", "--auto-approve"], 0);
    account.expect(&["plan", "--detailed-exitcode"], 0);
}

/// Each way AWS cannot be used has its own message and hint, never
/// another's: no credentials at all (no SDK warning dump before it),
/// credentials AWS does not know, and a caller denied the read.
#[tokio::test]
async fn plan_names_the_cause_when_aws_cannot_be_used() {
    let account = Account::new();
    account.configure(&["a"], "");
    let plan_with = |key: Option<(&str, &str)>| {
        let mut cmd = account.command(&["plan"]);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        if let Some((id, secret)) = key {
            cmd.env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let none = plan_with(None);
    assert!(
        none.contains("hint: no AWS credentials were found; set AWS_PROFILE")
            && !none.contains("could not be reached")
            && !none.contains("WARN"),
        "{none}"
    );
    let unknown = plan_with(Some((
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )));
    assert!(
        unknown.contains("hint: AWS does not accept these credentials"),
        "{unknown}"
    );
    // A user with no permission at all.
    let iam = account.iam().await;
    iam.create_user().user_name("nobody").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("nobody")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let denied = plan_with(Some((&key.access_key_id, &key.secret_access_key)));
    assert!(
        denied.contains("AccessDenied")
            && denied.contains(
                "hint: the caller may not do this; `rise-registry doctor` names the caller"
            )
            && !denied.contains("no AWS credentials"),
        "{denied}"
    );
}
