//! Proves the test harness: the Rust AWS SDK against the emulator does the
//! whole credential path serve will use. A tagged repository, a role with an
//! inline policy, AssumeRole with a session policy, and an ECR token fetched
//! with the assumed credentials.

use crate::support;

use aws_sdk_ecr::types::Tag;
use base64::Engine;
use support::{ACCOUNT_ID, Emulator, REGION};

#[tokio::test]
async fn sdk_round_trip_through_ecr_iam_and_sts() {
    let emulator = Emulator::start();
    let admin = emulator.admin_config().await;
    let ecr = aws_sdk_ecr::Client::new(&admin);
    let iam = aws_sdk_iam::Client::new(&admin);
    let sts = aws_sdk_sts::Client::new(&admin);

    // A tagged repository.
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let repo = ecr
        .create_repository()
        .repository_name("rise/harness")
        .tags(tag("rise:managed", "true"))
        .tags(tag("rise:project", "harness"))
        .send()
        .await
        .expect("CreateRepository")
        .repository
        .expect("a repository");
    let repo_arn = repo.repository_arn.expect("an ARN");
    assert_eq!(
        repo_arn,
        format!("arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/rise/harness")
    );
    let tags = ecr
        .list_tags_for_resource()
        .resource_arn(&repo_arn)
        .send()
        .await
        .expect("ListTagsForResource")
        .tags
        .unwrap_or_default();
    assert!(
        tags.iter()
            .any(|t| t.key == "rise:managed" && t.value == "true"),
        "{tags:?}"
    );

    // A role with an inline push policy on the prefix.
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_ID}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = iam
        .create_role()
        .role_name("rise-harness-push")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole")
        .role
        .expect("a role");
    let push_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["ecr:BatchCheckLayerAvailability","ecr:PutImage","ecr:BatchGetImage"],
              "Resource":"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/rise/*"}},
            {{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}}]}}"#
    );
    iam.put_role_policy()
        .role_name("rise-harness-push")
        .policy_name("push")
        .policy_document(push_policy)
        .send()
        .await
        .expect("PutRolePolicy");

    // AssumeRole narrowed to exactly one repository.
    let session_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["ecr:BatchCheckLayerAvailability","ecr:PutImage","ecr:BatchGetImage"],"Resource":"{repo_arn}"}},
            {{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}}]}}"#
    );
    let assumed = sts
        .assume_role()
        .role_arn(role.arn)
        .role_session_name("rise-harness")
        .policy(session_policy)
        .duration_seconds(3600)
        .send()
        .await
        .expect("AssumeRole");
    let creds = assumed.credentials.expect("credentials");
    assert_ne!(creds.access_key_id, support::ADMIN_KEY);
    let expiration = std::time::SystemTime::try_from(creds.expiration).unwrap();
    let lifetime = expiration
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        lifetime.as_secs() > 3500 && lifetime.as_secs() <= 3600,
        "{lifetime:?}"
    );

    // An ECR token, fetched with the assumed credentials.
    let scoped = emulator
        .config_for(aws_sdk_sts::config::Credentials::new(
            creds.access_key_id,
            creds.secret_access_key,
            Some(creds.session_token),
            Some(expiration),
            "assumed",
        ))
        .await;
    let scoped_ecr = aws_sdk_ecr::Client::new(&scoped);
    let auth = scoped_ecr
        .get_authorization_token()
        .send()
        .await
        .expect("GetAuthorizationToken with the assumed role")
        .authorization_data
        .unwrap_or_default()
        .pop()
        .expect("authorization data");
    let token = base64::engine::general_purpose::STANDARD
        .decode(auth.authorization_token.expect("a token"))
        .expect("base64");
    let token = String::from_utf8(token).expect("utf-8");
    let (user, password) = token.split_once(':').expect("user:password");
    assert_eq!(user, "AWS");
    assert!(!password.is_empty());
    let endpoint = auth.proxy_endpoint.expect("a proxy endpoint");
    assert!(
        endpoint.contains(&emulator.addr.port().to_string()),
        "{endpoint}"
    );

    // Strict IAM mode really evaluates policies (for IAM and STS calls; the
    // emulator does not evaluate them for ECR): the push role may not read IAM.
    let scoped_iam = aws_sdk_iam::Client::new(&scoped);
    let denied = scoped_iam
        .get_role()
        .role_name("rise-harness-push")
        .send()
        .await;
    let err = denied.expect_err("the assumed push role must not read IAM");
    let code = aws_sdk_iam::error::ProvideErrorMetadata::code(&err.into_service_error())
        .map(str::to_owned);
    // AWS says `AccessDenied`, the emulator `AccessDeniedException`.
    assert!(
        code.as_deref()
            .is_some_and(|c| c.starts_with("AccessDenied")),
        "{code:?}"
    );
}
