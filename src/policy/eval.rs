//! A small evaluator of IAM policy documents, for what rise-registry
//! writes: Allow statements with `Action` and `Resource` (strings or
//! lists), matched the way IAM matches them (`*` any run of characters, `?`
//! one character, actions case-insensitive). Enough to prove what a session
//! policy reaches (the scoping tests) and to say which of a role's grants
//! is missing (`doctor`); not a full IAM engine: no `Deny`, `NotAction`,
//! `NotResource` or conditions, which rise-registry never writes.

use serde_json::Value;

/// IAM's wildcard match: `*` any sequence (including empty), `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
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

/// A policy field that is a string or a list of strings, as a list.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// A document's statements: `Statement` may be one object or a list.
fn statements(policy: &Value) -> Vec<&Value> {
    match &policy["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => vec![],
    }
}

fn allow(statement: &Value) -> bool {
    statement["Effect"] == "Allow"
}

fn action_matches(statement: &Value, action: &str) -> bool {
    strings(&statement["Action"])
        .iter()
        .any(|a| glob(&a.to_lowercase(), &action.to_lowercase()))
}

/// Whether some Allow statement of `policy` grants `action` on `resource`.
pub fn allows(policy: &Value, action: &str, resource: &str) -> bool {
    statements(policy).iter().any(|s| {
        allow(s)
            && action_matches(s, action)
            && strings(&s["Resource"]).iter().any(|r| glob(r, resource))
    })
}

/// Whether any of `policies` allows `action` on `resource` (a role's inline
/// policies together).
pub fn any_allows<'a>(
    policies: impl IntoIterator<Item = &'a Value>,
    action: &str,
    resource: &str,
) -> bool {
    policies.into_iter().any(|p| allows(p, action, resource))
}

/// Whether the trust policy `trust` lets `principal` (a role, user or
/// account-root ARN) call `action` (`sts:AssumeRole`). An account's `:root`
/// in the trust policy admits every principal of that account, whose own
/// policy must then allow the call; that is reported as trusted here.
pub fn trusts(trust: &Value, principal: &str, action: &str) -> bool {
    let account_root = principal
        .split(':')
        .nth(4)
        .map(|account| {
            let partition = principal.split(':').nth(1).unwrap_or("aws");
            format!("arn:{partition}:iam::{account}:root")
        })
        .unwrap_or_default();
    statements(trust).iter().any(|s| {
        allow(s)
            && action_matches(s, action)
            && strings(&s["Principal"]["AWS"])
                .iter()
                .any(|p| p == principal || *p == account_root || p == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_matcher_follows_iam_wildcards() {
        assert!(glob("arn:*:repository/rise/*", "arn:x:repository/rise/a"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*", "") && !glob("abc", "abcd") && !glob("abcd", "abc"));
    }

    #[test]
    fn a_single_statement_object_counts_like_a_list() {
        let policy =
            json!({"Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:r/*"}});
        assert!(allows(&policy, "ECR:PutImage", "arn:r/x"));
        assert!(!allows(&policy, "s3:GetObject", "arn:r/x"));
        let deny = json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]});
        assert!(!allows(&deny, "ecr:PutImage", "arn:r/x"));
    }

    #[test]
    fn trust_names_the_principal_or_its_account() {
        let role = "arn:aws:iam::123456789012:role/rise-backend";
        let by_role = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": [role]}}]});
        let by_root = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]});
        let other = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/someone-else"}}]});
        assert!(trusts(&by_role, role, "sts:AssumeRole"));
        assert!(trusts(&by_root, role, "sts:AssumeRole"));
        assert!(!trusts(&other, role, "sts:AssumeRole"));
        assert!(!trusts(&by_role, role, "sts:TagSession"));
    }
}
