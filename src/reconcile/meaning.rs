//! What an action means, in one line per change, for the reviewer of a
//! plan: `trust: arn:aws:iam::123456789012:user/ci may now assume
//! rise-backend`, `policy rise-push: + ecr:BatchDeleteImage on rise/*`,
//! `lifecycle: keep the newest 30 images (was 100): …`.
//!
//! Pure. Policies are read as sets of grants (who or what action, on which
//! resource, under which condition); the meaning of a policy change is the
//! grants it adds and removes. A grant an action adds is marked
//! [`Access::Widens`] (a new principal, a new action, a wider resource,
//! a `Deny` dropped), one it removes [`Access::Narrows`]: a reviewer looks
//! at the widening ones first.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::canonical::canonical;
use super::plan::{Action, Change};

/// What a change does to who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Someone may do something they could not before.
    Widens,
    /// Someone may no longer do something they could.
    Narrows,
    /// No permission changes (settings, tags, layout of a policy).
    Unchanged,
}

/// One line of meaning; in `plan --json` each action's `meanings`
/// (docs/plan-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meaning {
    pub text: String,
    pub access: Access,
}

impl Meaning {
    /// A meaning quotes values of policies anyone may have written: its
    /// text is made [visible](super::diff::visible), one line with no
    /// terminal sequence or reordering character in it.
    fn new(text: impl Into<String>, access: Access) -> Self {
        let text = text.into();
        Self {
            text: super::diff::visible(&text).into_owned(),
            access,
        }
    }
}

/// The meanings of `action`, widening ones first; never empty.
pub fn meanings(action: &Action) -> Vec<Meaning> {
    use Access::Unchanged;
    let mut out = match action {
        Action::CreateRole { name, trust, .. } => trust_meanings(name, None, Some(trust)),
        Action::UpdateTrust {
            name,
            before,
            after,
            ..
        } => trust_meanings(name, Some(before), Some(after)),
        Action::PutRolePolicy {
            policy,
            before,
            after,
            ..
        } => policy_meanings(policy, before.as_ref(), Some(after)),
        Action::DeleteRolePolicy { policy, before, .. } => {
            policy_meanings(policy, Some(before), None)
        }
        Action::CreateRepository { settings, .. } => {
            let summary: Vec<String> = settings.iter().map(|(s, v)| s.summary(v)).collect();
            vec![Meaning::new(
                format!("repository: new, {}", summary.join(", ")),
                Unchanged,
            )]
        }
        Action::Adopt { project, .. } => vec![Meaning::new(
            format!(
                "repository: made by hand, now managed for project {project} (its other tags stay)"
            ),
            Unchanged,
        )],
        Action::Unorphan { .. } => vec![Meaning::new(
            "repository: its project is back; no longer orphaned",
            Unchanged,
        )],
        Action::UpdateRepository { changes, .. } => changes.iter().map(change_meaning).collect(),
        Action::SetTags { set, remove, .. } | Action::SetRoleTags { set, remove, .. } => {
            let mut parts: Vec<String> = set.iter().map(|(k, v)| format!("+ {k} = {v}")).collect();
            parts.extend(remove.iter().map(|k| format!("- {k}")));
            vec![Meaning::new(
                format!("tags: {}", parts.join(", ")),
                Unchanged,
            )]
        }
        Action::Orphan { .. } => vec![Meaning::new(
            "repository: no project claims it; marked rise:orphaned=true, its images are kept",
            Unchanged,
        )],
        Action::DeleteRepository { .. } => vec![Meaning::new(
            "repository: deleted with all its images (auto_remove is on)",
            Unchanged,
        )],
    };
    // Stable: widening first, otherwise in the order found.
    out.sort_by_key(|m| m.access);
    out
}

fn change_meaning(change: &Change) -> Meaning {
    Meaning::new(
        change.setting.meaning(&change.before, &change.after),
        Access::Unchanged,
    )
}

/// A policy document as a set of grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    deny: bool,
    /// The principal (trust policies) or the resource (permission
    /// policies), as shown.
    on: String,
    action: String,
    condition: Option<String>,
}

/// The string set under `key` of a canonical statement, with `Not…` keys
/// spelled out (`everything but X`).
fn set(statement: &Value, key: &str) -> Vec<String> {
    let items = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(plain).collect())
            .unwrap_or_else(|| vec![plain(v)])
    };
    if let Some(v) = statement.get(key) {
        items(v)
    } else if let Some(v) = statement.get(format!("Not{key}")) {
        vec![format!("everything but {}", items(v).join(", "))]
    } else {
        vec![]
    }
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn statements(doc: Option<&Value>) -> Vec<Value> {
    doc.map(canonical)
        .and_then(|d| d.get("Statement").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// ECR repository ARNs as their repository name (`rise/*`): the rest of
/// the ARN is the account's own and the same on every line. All of them
/// (`repository/*`) is said in words, so it cannot be read as `*`.
fn short_resource(resource: &str) -> String {
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "ecr", _, _, rest] => match rest.strip_prefix("repository/") {
            Some("*") => "every repository".to_string(),
            Some(name) => name.to_string(),
            None => resource.to_string(),
        },
        _ => resource.to_string(),
    }
}

/// A condition block as `key = value and …` (StringEquals), `key like
/// value` (StringLike), else `Operator(key, value)`.
fn condition_text(condition: &Value) -> String {
    let Some(ops) = condition.as_object() else {
        return condition.to_string();
    };
    let mut parts = Vec::new();
    for (op, keys) in ops {
        let Some(keys) = keys.as_object() else {
            parts.push(format!("{op}({keys})"));
            continue;
        };
        for (key, values) in keys {
            let values = values
                .as_array()
                .map(|a| a.iter().map(plain).collect::<Vec<_>>().join(" or "))
                .unwrap_or_else(|| plain(values));
            parts.push(match op.as_str() {
                "StringEquals" => format!("{key} = {values}"),
                "StringLike" => format!("{key} like {values}"),
                _ => format!("{op}({key}, {values})"),
            });
        }
    }
    parts.join(" and ")
}

fn grants(doc: Option<&Value>, trust: bool) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for st in statements(doc) {
        let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
        let condition = st.get("Condition").map(condition_text);
        let targets = if trust {
            principals(&st)
        } else {
            set(&st, "Resource")
                .iter()
                .map(|r| short_resource(r))
                .collect()
        };
        for action in set(&st, "Action") {
            for on in &targets {
                out.insert(Grant {
                    deny,
                    on: on.clone(),
                    action: action.clone(),
                    condition: condition.clone(),
                });
            }
        }
    }
    out
}

/// The principals of a trust statement, each as a reviewer names it.
fn principals(statement: &Value) -> Vec<String> {
    match statement.get("Principal") {
        Some(Value::String(s)) if s == "*" => vec!["anyone".into()],
        Some(Value::Object(map)) => map
            .iter()
            .flat_map(|(kind, values)| {
                let values: Vec<String> = values
                    .as_array()
                    .map(|a| a.iter().map(plain).collect())
                    .unwrap_or_else(|| vec![plain(values)]);
                values.into_iter().map(move |v| match kind.as_str() {
                    "AWS" if v == "*" => "anyone".to_string(),
                    "AWS" => v,
                    "Service" => format!("service {v}"),
                    "Federated" => format!("tokens of {v}"),
                    other => format!("{other} {v}"),
                })
            })
            .collect(),
        Some(other) => vec![plain(other)],
        None => set(statement, "Principal"),
    }
}

fn when(condition: Option<&String>) -> String {
    condition.map_or_else(String::new, |c| format!(" when {c}"))
}

/// Who gains and loses the right to assume `role`.
fn trust_meanings(role: &str, before: Option<&Value>, after: Option<&Value>) -> Vec<Meaning> {
    let (b, a) = (grants(before, true), grants(after, true));
    // Per principal and effect: the grants it loses and gains.
    type LostGained<'a> = (Vec<&'a Grant>, Vec<&'a Grant>);
    let mut by_principal: BTreeMap<(bool, &str), LostGained<'_>> = BTreeMap::new();
    for g in b.difference(&a) {
        by_principal.entry((g.deny, &g.on)).or_default().0.push(g);
    }
    for g in a.difference(&b) {
        by_principal.entry((g.deny, &g.on)).or_default().1.push(g);
    }
    // `(sts:TagSession, …)` for actions other than plain AssumeRole, then
    // the conditions.
    let list = |gs: &[&Grant]| -> String {
        let mut actions: Vec<&str> = gs.iter().map(|g| g.action.as_str()).collect();
        actions.dedup();
        let mut conditions: Vec<&String> = gs.iter().filter_map(|g| g.condition.as_ref()).collect();
        conditions.dedup();
        let via = if actions == ["sts:AssumeRole"] {
            String::new()
        } else {
            format!(" ({})", actions.join(", "))
        };
        let when = if conditions.is_empty() {
            String::new()
        } else {
            format!(
                " when {}",
                conditions
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join("; or ")
            )
        };
        format!("{via}{when}")
    };
    let mut out = Vec::new();
    for ((deny, principal), (lost, gained)) in by_principal {
        let (verb_gain, verb_lose, gain_access, lose_access) = if deny {
            (
                "is now denied assuming",
                "is no longer denied assuming",
                Access::Narrows,
                Access::Widens,
            )
        } else {
            (
                "may now assume",
                "may no longer assume",
                Access::Widens,
                Access::Narrows,
            )
        };
        let text = match (lost.is_empty(), gained.is_empty()) {
            (true, _) => Meaning::new(
                format!("trust: {principal} {verb_gain} {role}{}", list(&gained)),
                gain_access,
            ),
            (false, true) => Meaning::new(
                format!("trust: {principal} {verb_lose} {role}{}", list(&lost)),
                lose_access,
            ),
            // The same principal under other terms: a new condition may
            // let in callers the old one did not, so it is a widening to
            // review.
            (false, false) => Meaning::new(
                format!(
                    "trust: {principal} {verb_gain} {role}{} (was {})",
                    list(&gained),
                    lost.iter()
                        .map(|g| g.condition.as_ref().map_or_else(
                            || "without a condition".to_string(),
                            |c| format!("when {c}")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Access::Widens,
            ),
        };
        out.push(text);
    }
    if out.is_empty() {
        out.push(Meaning::new(
            format!("trust: only its wording changes; who may assume {role} stays the same"),
            Access::Unchanged,
        ));
    }
    out
}

/// The actions and resources `policy` grants and stops granting.
fn policy_meanings(policy: &str, before: Option<&Value>, after: Option<&Value>) -> Vec<Meaning> {
    let (b, a) = (grants(before, false), grants(after, false));
    // Per action (and effect and condition): resources lost and gained.
    type Key = (bool, Option<String>, String);
    let mut per_action: BTreeMap<Key, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for g in b.difference(&a) {
        let key = (g.deny, g.condition.clone(), g.action.clone());
        per_action.entry(key).or_default().0.insert(g.on.clone());
    }
    for g in a.difference(&b) {
        let key = (g.deny, g.condition.clone(), g.action.clone());
        per_action.entry(key).or_default().1.insert(g.on.clone());
    }
    // Actions that change the same way share a line.
    type Line = (bool, Option<String>, BTreeSet<String>, BTreeSet<String>);
    let mut lines: BTreeMap<Line, Vec<String>> = BTreeMap::new();
    for ((deny, condition, action), (lost, gained)) in per_action {
        lines
            .entry((deny, condition, lost, gained))
            .or_default()
            .push(action);
    }
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for ((deny, condition, lost, gained), actions) in lines {
        let actions = actions.join(", ");
        let deny_word = if deny { "deny " } else { "" };
        let cond = when(condition.as_ref());
        let (text, widens) = match (lost.is_empty(), gained.is_empty()) {
            (true, _) => (
                format!("+ {deny_word}{actions} on {}{cond}", join(&gained)),
                !deny,
            ),
            (false, true) => (
                format!("- {deny_word}{actions} on {}{cond}", join(&lost)),
                deny,
            ),
            (false, false) => (
                format!(
                    "~ {deny_word}{actions} on {} (was {}){cond}",
                    join(&gained),
                    join(&lost)
                ),
                // Something is granted that was not: a wider or another
                // resource. (A changed Deny lifts it somewhere.)
                true,
            ),
        };
        let access = if widens {
            Access::Widens
        } else {
            Access::Narrows
        };
        out.push(Meaning::new(format!("policy {policy}: {text}"), access));
    }
    if out.is_empty() {
        out.push(Meaning::new(
            format!("policy {policy}: only its wording changes; the permissions stay the same"),
            Access::Unchanged,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::reconcile::plan::RoleKind;
    use crate::repository_settings::lifecycle_policy;

    fn texts(action: &Action) -> Vec<(Access, String)> {
        meanings(action)
            .into_iter()
            .map(|m| (m.access, m.text))
            .collect()
    }

    fn trust(principals: &[&str]) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "AccountRoot", "Effect": "Allow",
            "Action": "sts:AssumeRole", "Principal": {"AWS": principals}}]})
    }

    fn update_trust(before: Value, after: Value) -> Action {
        Action::UpdateTrust {
            role: RoleKind::Controller,
            name: "rise-backend".into(),
            before,
            after,
        }
    }

    #[test]
    fn a_new_trusted_principal_widens_and_a_dropped_one_narrows() {
        let root = "arn:aws:iam::123456789012:root";
        let ci = "arn:aws:iam::123456789012:user/ci";
        assert_eq!(
            texts(&update_trust(trust(&[root]), trust(&[root, ci]))),
            [(
                Access::Widens,
                format!("trust: {ci} may now assume rise-backend")
            )]
        );
        assert_eq!(
            texts(&update_trust(trust(&[root, ci]), trust(&[root]))),
            [(
                Access::Narrows,
                format!("trust: {ci} may no longer assume rise-backend")
            )]
        );
        // Only the Sid differs: nothing changes for anyone.
        let mut renamed = trust(&[root]);
        renamed["Statement"][0]["Sid"] = json!("Root");
        assert_eq!(
            meanings(&update_trust(trust(&[root]), renamed))[0].access,
            Access::Unchanged
        );
    }

    #[test]
    fn a_changed_condition_is_named_and_counts_as_widening() {
        let irsa = |sa: &str| {
            json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/oidc.example"},
                "Condition": {"StringEquals": {"oidc.example:sub": format!("system:serviceaccount:{sa}")}}}]})
        };
        let m = meanings(&update_trust(irsa("rise:a"), irsa("rise:b")));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].access, Access::Widens);
        assert_eq!(
            m[0].text,
            "trust: tokens of arn:aws:iam::1:oidc-provider/oidc.example may now assume rise-backend \
             (sts:AssumeRoleWithWebIdentity) when oidc.example:sub = system:serviceaccount:rise:b \
             (was when oidc.example:sub = system:serviceaccount:rise:a)"
        );
    }

    fn push_policy(actions: &[&str], resource: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Push", "Effect": "Allow", "Action": actions, "Resource": resource},
            {"Sid": "Login", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]})
    }

    fn put(before: Option<Value>, after: Value) -> Action {
        Action::PutRolePolicy {
            role: RoleKind::Push,
            name: "rise-backend-ecr-push".into(),
            policy: "rise-push".into(),
            before,
            after,
        }
    }

    #[test]
    fn policy_actions_gained_and_lost_are_listed_with_their_resources() {
        let repo = "arn:aws:ecr:us-east-1:123456789012:repository/rise/*";
        let before = push_policy(&["ecr:PutImage", "ecr:DeleteRepository"], repo);
        let after = push_policy(&["ecr:PutImage", "ecr:BatchDeleteImage"], repo);
        assert_eq!(
            texts(&put(Some(before), after)),
            [
                (
                    Access::Widens,
                    "policy rise-push: + ecr:BatchDeleteImage on rise/*".to_string()
                ),
                (
                    Access::Narrows,
                    "policy rise-push: - ecr:DeleteRepository on rise/*".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_wider_resource_widens_and_a_new_policy_grants_everything_in_it() {
        let narrow = push_policy(
            &["ecr:PutImage"],
            "arn:aws:ecr:us-east-1:1:repository/rise/a",
        );
        let wide = push_policy(&["ecr:PutImage"], "*");
        assert_eq!(
            texts(&put(Some(narrow), wide.clone())),
            [(
                Access::Widens,
                "policy rise-push: ~ ecr:PutImage on * (was rise/a)".to_string()
            )]
        );
        assert_eq!(
            texts(&put(None, wide.clone())),
            [(
                Access::Widens,
                "policy rise-push: + ecr:GetAuthorizationToken, ecr:PutImage on *".to_string()
            )]
        );
        let deleted = Action::DeleteRolePolicy {
            role: RoleKind::Push,
            name: "rise-backend-ecr-push".into(),
            policy: "rise-push".into(),
            before: wide,
        };
        assert_eq!(meanings(&deleted)[0].access, Access::Narrows);
        // A Deny that goes lifts a restriction.
        let deny = json!({"Statement": [{"Effect": "Deny", "Action": "ecr:X", "Resource": "*"}]});
        let m = meanings(&put(Some(deny), json!({"Statement": []})));
        assert_eq!(
            (m[0].access, m[0].text.as_str()),
            (Access::Widens, "policy rise-push: - deny ecr:X on *")
        );
    }

    #[test]
    fn lifecycle_changes_say_what_expires() {
        let update = |before: Option<Value>, after: u32| Action::UpdateRepository {
            repository: "rise/a".into(),
            changes: vec![Change {
                setting: crate::repository_settings::by_attribute("lifecycle_policy").unwrap(),
                before: before.unwrap_or(Value::Null),
                after: after.into(),
            }],
        };
        let text = |a: &Action| meanings(a)[0].text.clone();
        assert_eq!(
            text(&update(Some(lifecycle_policy(100)), 30)),
            "lifecycle: keep the newest 30 images (was 100): up to 70 images per repository will expire"
        );
        assert_eq!(
            text(&update(Some(lifecycle_policy(30)), 100)),
            "lifecycle: keep the newest 100 images (was 30): nothing more expires"
        );
        assert!(text(&update(None, 30)).contains("(no policy before)"));
        assert!(text(&update(Some(json!({"rules": []})), 30)).contains("did not write"));
    }

    #[test]
    fn every_action_has_a_meaning() {
        let repository = || "rise/a".to_string();
        for action in [
            Action::Orphan {
                repository: repository(),
            },
            Action::Unorphan {
                repository: repository(),
            },
            Action::DeleteRepository {
                repository: repository(),
            },
            Action::Adopt {
                repository: repository(),
                project: "a".into(),
            },
            Action::SetTags {
                repository: repository(),
                set: BTreeMap::from([("team".into(), "platform".into())]),
                remove: vec!["old".into()],
            },
        ] {
            let m = meanings(&action);
            assert_eq!(m.len(), 1, "{action}");
            assert_eq!(m[0].access, Access::Unchanged);
        }
    }
}
