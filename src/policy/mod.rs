//! IAM documents built from validated names: the per-project session policy
//! and the role session name that serve uses when it assumes the push role.
//! The documents of the two roles themselves are [`crate::roles`], apart
//! from this module because config renders them and this module reads
//! config.
//!
//! Pure functions of their inputs. The inputs are [`ProjectName`] and the
//! validated ECR settings, so nothing here can produce a wildcard resource:
//! a project name has no `*` or `?`, and the ARN is the exact repository.

pub mod eval;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::access::AccessKind;
use crate::config::EcrConfig;
use crate::naming::{NameError, ProjectName};

/// What scoped push credentials may do on their one repository: push and
/// pull, nothing else (no delete, no policy or tag changes).
pub(crate) const PUSH_ACTIONS: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// What pull-only credentials may do on their one repository: read image
/// manifests and layers, nothing that writes.
pub(crate) const PULL_ACTIONS: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// The ARN of the project's repository:
/// `arn:{partition}:ecr:{region}:{account}:repository/{repo_prefix}{project}`.
///
/// # Errors
/// When `{repo_prefix}{project}` is longer than ECR allows.
pub fn repository_arn(ecr: &EcrConfig, project: &ProjectName) -> Result<String, NameError> {
    Ok(format!(
        "arn:{}:ecr:{}:{}:repository/{}",
        ecr.partition(),
        ecr.region,
        ecr.account_id,
        ecr.repo_prefix.repository_name(project)?
    ))
}

/// The inline session policy for one project's credentials. The effective
/// permissions are the intersection of this and the push role's policy, so
/// the credentials reach exactly one repository even though the role's
/// policy covers the whole prefix.
///
/// # Errors
/// As [`repository_arn`].
pub fn session_policy(ecr: &EcrConfig, project: &ProjectName) -> Result<Value, NameError> {
    session_policy_for(ecr, project, AccessKind::Push)
}

/// The session policy for `kind` credentials: push and pull
/// ([`PUSH_ACTIONS`]) or pull only ([`PULL_ACTIONS`]), on the project's
/// repository alone.
///
/// # Errors
/// As [`repository_arn`].
pub fn session_policy_for(
    ecr: &EcrConfig,
    project: &ProjectName,
    kind: AccessKind,
) -> Result<Value, NameError> {
    let (sid, actions) = match kind {
        AccessKind::Push => ("PushPullThisProjectOnly", PUSH_ACTIONS),
        AccessKind::Pull => ("PullThisProjectOnly", PULL_ACTIONS),
    };
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": repository_arn(ecr, project)?,
            },
            {
                // GetAuthorizationToken has no resource-level permissions.
                "Sid": "RegistryLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
        ],
    }))
}

/// STS limits RoleSessionName to 64 characters.
const MAX_SESSION_NAME: usize = 64;
const SESSION_PREFIX: &str = "rise-";
/// Hex digits of the hash kept when a name is shortened: 48 bits, plenty to
/// keep two long project names apart in CloudTrail.
const HASH_HEX: usize = 12;

/// The RoleSessionName for a project: `rise-{project}`, which shows up in
/// CloudTrail as the assumed-role session. Project names only use
/// `[a-z0-9._-]`, all allowed in a session name (`[\w+=,.@-]`); a name too
/// long for 64 characters keeps its start and gets a hash of the whole name,
/// so distinct projects never share a session name.
pub fn role_session_name(project: &ProjectName) -> String {
    role_session_name_for(project, AccessKind::Push)
}

/// As [`role_session_name`], with `@pull` at the end for pull-only
/// credentials (`@` is allowed in a session name and never in a project
/// name, so no push session can look like a pull one).
pub fn role_session_name_for(project: &ProjectName, kind: AccessKind) -> String {
    let suffix = match kind {
        AccessKind::Push => "",
        AccessKind::Pull => "@pull",
    };
    let full = format!("{SESSION_PREFIX}{project}{suffix}");
    if full.len() <= MAX_SESSION_NAME {
        return full;
    }
    let digest = Sha256::digest(project.as_str().as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_SESSION_NAME - SESSION_PREFIX.len() - 1 - HASH_HEX - suffix.len();
    // Project names are ASCII, so byte slicing is character slicing.
    format!(
        "{SESSION_PREFIX}{}-{hash}{suffix}",
        &project.as_str()[..keep]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, load_sources};
    use std::sync::Arc;

    fn ecr(region: &str, partition: &str) -> EcrConfig {
        ecr_with_prefix(region, partition, "rise/")
    }

    fn ecr_with_prefix(region: &str, partition: &str, prefix: &str) -> EcrConfig {
        let text = format!(
            "registry:\n  type: ecr\n  region: {region}\n  account_id: '123456789012'\n  \
             repo_prefix: {prefix}\n  \
             role_arn: arn:{partition}:iam::123456789012:role/c\n  \
             push_role_arn: arn:{partition}:iam::123456789012:role/p\n\
             auth:\n  hs256_secret: 0123456789abcdef0123456789abcdef\n"
        );
        let sources = [Source {
            file: Arc::from("t.yaml"),
            text,
        }];
        match load_sources(&sources, &Arc::from("t"), &|_| None)
            .unwrap()
            .registry
        {
            crate::config::RegistryConfig::Ecr(e) => *e,
            _ => unreachable!(),
        }
    }

    fn project(s: &str) -> ProjectName {
        ProjectName::parse(s).unwrap()
    }

    #[test]
    fn the_session_policy_names_exactly_one_repository() {
        let policy = session_policy(&ecr("us-east-1", "aws"), &project("my-app")).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[0]["Resource"],
            "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app"
        );
        assert_eq!(statements[0]["Action"].as_array().unwrap().len(), 7);
        assert_eq!(statements[1]["Action"], "ecr:GetAuthorizationToken");
        assert_eq!(statements[1]["Resource"], "*");
        // No wildcard anywhere but the login statement.
        let push = serde_json::to_string(&statements[0]).unwrap();
        assert!(!push.contains('*') && !push.contains('?'), "{push}");
    }

    #[test]
    fn repository_arns_follow_the_partition() {
        let arn = repository_arn(&ecr("cn-north-1", "aws-cn"), &project("a")).unwrap();
        assert_eq!(
            arn,
            "arn:aws-cn:ecr:cn-north-1:123456789012:repository/rise/a"
        );
    }

    #[test]
    fn session_names_are_short_valid_and_distinct() {
        assert_eq!(role_session_name(&project("my-app")), "rise-my-app");
        let long_a = project(&format!("{}a", "x".repeat(100)));
        let long_b = project(&format!("{}b", "x".repeat(100)));
        let (a, b) = (role_session_name(&long_a), role_session_name(&long_b));
        assert_eq!(a.len(), 64);
        assert_eq!(b.len(), 64);
        assert_ne!(a, b, "same start, different names");
        assert_eq!(a, role_session_name(&long_a), "deterministic");
        let valid = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
        assert!(a.chars().all(valid), "{a}");
        let exactly = project(&"y".repeat(59));
        assert_eq!(
            role_session_name(&exactly).len(),
            64,
            "59 + 5 fits without a hash"
        );
        assert_eq!(
            role_session_name(&exactly),
            format!("rise-{}", "y".repeat(59))
        );
    }

    // Scoping: the session policy evaluated the way IAM matches actions and
    // resources (`*` any run of characters, `?` one character, actions
    // case-insensitive) against the ARNs next to the project's repository,
    // by the evaluator `doctor` uses too.
    use super::eval::allows;

    #[test]
    fn credentials_reach_exactly_one_repository() {
        let config = ecr("us-east-1", "aws");
        let policy = session_policy(&config, &project("my-app")).unwrap();
        let own = "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app";
        let neighbours = [
            "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app2",
            "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app-x",
            "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app/sub",
            "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-ap",
            "arn:aws:ecr:us-east-1:123456789012:repository/other/my-app",
            "arn:aws:ecr:us-east-1:123456789012:repository/my-app",
            "arn:aws:ecr:us-west-2:123456789012:repository/rise/my-app",
            "arn:aws:ecr:us-east-1:210987654321:repository/rise/my-app",
            "arn:aws-cn:ecr:us-east-1:123456789012:repository/rise/my-app",
            "arn:aws:ecr:us-east-1:123456789012:repository/rise/MY-APP",
        ];
        for action in PUSH_ACTIONS {
            assert!(
                allows(&policy, action, own),
                "{action} on its own repository"
            );
            for other in neighbours {
                assert!(
                    !allows(&policy, action, other),
                    "{action} must not reach {other}"
                );
            }
        }
        // Login works; nothing beyond push and pull does, not even on its own repository.
        assert!(allows(&policy, "ecr:GetAuthorizationToken", "*"));
        for action in [
            "ecr:DeleteRepository",
            "ecr:BatchDeleteImage",
            "ecr:SetRepositoryPolicy",
            "ecr:PutLifecyclePolicy",
            "ecr:TagResource",
            "ecr:CreateRepository",
            "iam:PassRole",
            "sts:AssumeRole",
        ] {
            assert!(!allows(&policy, action, own), "{action}");
            assert!(!allows(&policy, action, "*"), "{action}");
        }
    }

    #[test]
    fn pull_credentials_read_their_one_repository_and_write_nothing() {
        let config = ecr("us-east-1", "aws");
        let policy = session_policy_for(&config, &project("my-app"), AccessKind::Pull).unwrap();
        let own = "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app";
        for action in PULL_ACTIONS {
            assert!(allows(&policy, action, own), "{action}");
            assert!(
                !allows(
                    &policy,
                    action,
                    "arn:aws:ecr:us-east-1:123456789012:repository/rise/my-app2"
                ),
                "{action} on a neighbour"
            );
        }
        assert!(allows(&policy, "ecr:GetAuthorizationToken", "*"));
        // Every write a push needs, and every other write, is refused.
        let writes = PUSH_ACTIONS.iter().filter(|a| !PULL_ACTIONS.contains(a));
        for action in writes.chain(&[
            "ecr:BatchDeleteImage",
            "ecr:DeleteRepository",
            "ecr:PutImageTagMutability",
            "ecr:TagResource",
            "ecr:*",
        ]) {
            assert!(!allows(&policy, action, own), "{action}");
            assert!(!allows(&policy, action, "*"), "{action}");
        }
        assert_eq!(
            role_session_name_for(&project("my-app"), AccessKind::Pull),
            "rise-my-app@pull"
        );
        let long = project(&"p".repeat(200));
        let pull = role_session_name_for(&long, AccessKind::Pull);
        assert!(
            pull.len() <= MAX_SESSION_NAME && pull.ends_with("@pull"),
            "{pull}"
        );
        assert_ne!(pull, role_session_name(&long));
    }

    #[test]
    fn a_prefix_without_slash_still_scopes_exactly() {
        let policy =
            session_policy(&ecr_with_prefix("us-east-1", "aws", "rise-"), &project("a")).unwrap();
        let own = "arn:aws:ecr:us-east-1:123456789012:repository/rise-a";
        assert!(allows(&policy, "ecr:PutImage", own));
        assert!(!allows(
            &policy,
            "ecr:PutImage",
            "arn:aws:ecr:us-east-1:123456789012:repository/rise-ab"
        ));
        assert!(!allows(
            &policy,
            "ecr:PutImage",
            "arn:aws:ecr:us-east-1:123456789012:repository/rise-a/b"
        ));
    }
}
