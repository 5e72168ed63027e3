//! The session policy, evaluated the way IAM matches actions and resources
//! (`*` any run of characters, `?` one character, actions case-insensitive),
//! against the ARNs next to the project's repository: only the exact
//! repository may be pushed to or pulled from.

use std::sync::Arc;

use rise_registry::config::{EcrConfig, RegistryConfig, Source, load_sources};
use rise_registry::naming::ProjectName;
use rise_registry::policy::{PUSH_ACTIONS, session_policy};
use serde_json::Value;

fn ecr(prefix: &str) -> EcrConfig {
    let text = format!(
        "registry:\n  type: ecr\n  region: us-east-1\n  account_id: '123456789012'\n  repo_prefix: {prefix}\n  \
         role_arn: arn:aws:iam::123456789012:role/c\n  push_role_arn: arn:aws:iam::123456789012:role/p\n\
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
        RegistryConfig::Ecr(e) => *e,
        _ => unreachable!(),
    }
}

/// IAM's wildcard match: `*` any sequence (including empty), `?` exactly one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// Allowed when some Allow statement matches both (there are no Deny
/// statements, and nothing outside an Allow is granted).
fn allows(policy: &Value, action: &str, resource: &str) -> bool {
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"])
                .iter()
                .any(|a| glob(&a.to_lowercase(), &action.to_lowercase()))
            && strings(&s["Resource"]).iter().any(|r| glob(r, resource))
    })
}

#[test]
fn the_matcher_follows_iam_wildcards() {
    assert!(glob("arn:*:repository/rise/*", "arn:x:repository/rise/a"));
    assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    assert!(glob("*", "") && !glob("abc", "abcd") && !glob("abcd", "abc"));
}

#[test]
fn credentials_reach_exactly_one_repository() {
    let config = ecr("rise/");
    let project = ProjectName::parse("my-app").unwrap();
    let policy = session_policy(&config, &project).unwrap();
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
fn a_prefix_without_slash_still_scopes_exactly() {
    let policy = session_policy(&ecr("rise-"), &ProjectName::parse("a").unwrap()).unwrap();
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
