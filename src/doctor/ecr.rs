//! The `ecr` checks' decisions, from values the live side gathered: who the
//! caller is, the observed roles and repositories, the plan. Pure; each
//! function returns the [`Check`]s it decides.

use std::collections::BTreeMap;

use super::Check;
use crate::config::EcrConfig;
use crate::config::Location;
use crate::naming::ProjectName;
use crate::policy::eval::{allows, any_allows, trusts};
use crate::policy::{PUSH_ACTIONS, repository_arn, session_policy};
use crate::reconcile::plan::{ObservedRepository, ObservedState, Plan};
use crate::tags::{TAG_MANAGED, TAG_ORPHANED, TAG_PROJECT};

/// Whether `caller` (GetCallerIdentity's ARN) is the controller role: the
/// role itself, or a session of it (`arn:…:sts::…:assumed-role/NAME/…`,
/// which carries the role's name without its path).
pub fn caller_is_controller(caller: &str, ecr: &EcrConfig) -> bool {
    let role = &ecr.role_arn;
    if caller == role.as_str() {
        return true;
    }
    let session = format!(
        "arn:{}:sts::{}:assumed-role/{}/",
        role.partition(),
        role.account(),
        role.name()
    );
    caller.starts_with(&session)
}

/// Why AssumeRole of the push role was refused, from the observed roles:
/// the push role's trust, or the controller's own policy, or (neither
/// looks wrong) AWS's words only.
pub fn push_role_refusal_hint(
    ecr: &EcrConfig,
    observed: Option<&ObservedState>,
    inv: &Location,
) -> String {
    let controller = ecr.role_arn.as_str();
    let push = ecr.push_role_arn.as_str();
    let apply = inv.command("apply");
    let Some(observed) = observed else {
        return format!(
            "the push role's trust policy must trust {controller} and the controller's policy must allow sts:AssumeRole on {push}; `{apply}` sets both"
        );
    };
    let Some(push_role) = &observed.push else {
        return format!(
            "the push role {push} does not exist: `{apply}` creates it (registry.push_role_arn names it)"
        );
    };
    if !trusts(&push_role.trust, controller, "sts:AssumeRole") {
        return format!(
            "the push role's trust policy does not trust the controller role {controller} (registry.role_arn): `{apply}` restores it"
        );
    }
    let controller_allows = observed
        .controller
        .as_ref()
        .is_some_and(|c| any_allows(c.policies.values(), "sts:AssumeRole", push));
    if !controller_allows {
        return format!(
            "the controller role's policy does not allow sts:AssumeRole on {push} (registry.push_role_arn): `{apply}` restores it"
        );
    }
    format!(
        "both roles' documents allow it; check for a permissions boundary or SCP on {controller}, and that registry.push_role_arn is {push}"
    )
}

/// The push role's own policies allow every push and pull action on the
/// project's repository (the session policy can only narrow them).
pub fn push_permissions(
    ecr: &EcrConfig,
    project: &ProjectName,
    observed: &ObservedState,
    inv: &Location,
) -> Check {
    const ID: &str = "ecr.push_role_permissions";
    let title = "the push role allows push and pull on the repository";
    let Ok(arn) = repository_arn(ecr, project) else {
        return Check::fail(
            ID,
            title,
            "the repository name is too long",
            "shorten registry.repo_prefix or the project name",
        );
    };
    let Some(push) = &observed.push else {
        return Check::fail(
            ID,
            title,
            format!("the push role {} does not exist", ecr.push_role_arn),
            format!("`{}` creates it", inv.command("apply")),
        );
    };
    let missing: Vec<&str> = PUSH_ACTIONS
        .iter()
        .copied()
        .filter(|a| !any_allows(push.policies.values(), a, &arn))
        .collect();
    let login = any_allows(push.policies.values(), "ecr:GetAuthorizationToken", "*");
    if missing.is_empty() && login {
        return Check::pass(
            ID,
            title,
            format!("its inline policies allow all 7 actions on {arn}"),
        );
    }
    let mut lacking: Vec<&str> = missing;
    if !login {
        lacking.push("ecr:GetAuthorizationToken");
    }
    Check::fail(
        ID,
        title,
        format!(
            "its inline policies do not allow {} on {arn}",
            lacking.join(", ")
        ),
        format!(
            "the push role's policy (rise-push) must allow these on {}*: `{}` restores it",
            ecr.repo_prefix,
            inv.command("apply")
        ),
    )
}

/// The session policy rise-registry sends for `project` allows push and
/// pull on its repository and nothing next to it: other projects' and
/// look-alike repositories, other prefixes, regions and accounts.
pub fn session_scope(ecr: &EcrConfig, project: &ProjectName, others: &[ProjectName]) -> Check {
    const ID: &str = "ecr.session_policy_scope";
    let title = "the session policy reaches exactly the project's repository";
    let (Ok(policy), Ok(own)) = (session_policy(ecr, project), repository_arn(ecr, project)) else {
        return Check::fail(
            ID,
            title,
            "the repository name is too long",
            "shorten registry.repo_prefix or the project name",
        );
    };
    let base = own.rsplit_once(":repository/").map_or("", |(b, _)| b);
    let name = format!("{}{project}", ecr.repo_prefix);
    let mut neighbours: Vec<String> = others
        .iter()
        .filter(|o| *o != project)
        .filter_map(|o| repository_arn(ecr, o).ok())
        .collect();
    for look_alike in [
        format!("{name}2"),
        format!("{name}-x"),
        format!("{name}/sub"),
        project.to_string(),
    ] {
        neighbours.push(format!("{base}:repository/{look_alike}"));
    }
    neighbours.push(own.replace(&format!(":{}:", ecr.account_id), ":000000000000:"));
    let refused = |arn: &String| PUSH_ACTIONS.iter().all(|a| !allows(&policy, a, arn));
    let own_ok = PUSH_ACTIONS.iter().all(|a| allows(&policy, a, &own));
    let leaks: Vec<&String> = neighbours.iter().filter(|n| !refused(n)).collect();
    if own_ok && leaks.is_empty() {
        Check::pass(
            ID,
            title,
            format!(
                "push and pull on {own} only ({} neighbours refused)",
                neighbours.len()
            ),
        )
    } else {
        // Only a changed build could get here: the policy is built from
        // validated names.
        Check::fail(
            ID,
            title,
            format!(
                "own repository allowed: {own_ok}; also reaches: {}",
                leaks
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "this build's session policy is wrong; report it and keep serve on the previous version",
        )
    }
}

/// The project's repository exists under the prefix, carries the managed
/// tags and is not orphaned. `all_names` is every repository in the
/// registry (any prefix), to spot one made under another prefix.
pub fn repository(
    ecr: &EcrConfig,
    project: &ProjectName,
    observed: &ObservedState,
    all_names: &[String],
    inv: &Location,
) -> Vec<Check> {
    let name = match ecr.repo_prefix.repository_name(project) {
        Ok(n) => n,
        Err(e) => {
            return vec![Check::fail(
                "ecr.repository",
                "the repository exists under the prefix",
                e.message,
                "shorten registry.repo_prefix or the project name",
            )];
        }
    };
    let exists_title = format!("repository {name} exists");
    let tags_title = "it carries the managed tags";
    let orphan_title = "it is not orphaned";
    let apply = inv.command("apply");
    let Some(repo) = observed.repositories.get(&name) else {
        let elsewhere: Vec<&String> = all_names
            .iter()
            .filter(|n| {
                **n != name
                    && (n.ends_with(&format!("/{project}")) || n.as_str() == project.as_str())
            })
            .collect();
        let (detail, hint) = if elsewhere.is_empty() {
            (
                "ECR has no such repository".to_string(),
                format!("`{apply}` creates it"),
            )
        } else {
            let found = elsewhere
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!(
                    "not under registry.repo_prefix `{}`, but ECR has {found}",
                    ecr.repo_prefix
                ),
                format!(
                    "registry.repo_prefix is `{}`: set it to the prefix the repositories were made with, or `{apply}` to create {name}",
                    ecr.repo_prefix
                ),
            )
        };
        let reason = format!("{name} does not exist");
        return vec![
            Check::fail("ecr.repository", exists_title, detail, hint),
            Check::skipped("ecr.repository_tags", tags_title, reason.clone()),
            Check::skipped("ecr.repository_not_orphaned", orphan_title, reason),
        ];
    };
    vec![
        Check::pass(
            "ecr.repository",
            exists_title,
            format!("under registry.repo_prefix `{}`", ecr.repo_prefix),
        ),
        managed_tags(project, repo, &apply),
        if repo.tags.contains_key(TAG_ORPHANED) {
            Check::fail(
                "ecr.repository_not_orphaned",
                orphan_title,
                format!(
                    "it is tagged {TAG_ORPHANED}, as apply marks a repository no project claims"
                ),
                format!("`{apply}` removes the tag now that the project is configured"),
            )
        } else {
            Check::pass(
                "ecr.repository_not_orphaned",
                orphan_title,
                format!("no {TAG_ORPHANED} tag"),
            )
        },
    ]
}

fn managed_tags(project: &ProjectName, repo: &ObservedRepository, apply: &str) -> Check {
    let title = "it carries the managed tags";
    let want = [(TAG_MANAGED, "true"), (TAG_PROJECT, project.as_str())];
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| repo.tags.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| match repo.tags.get(*k) {
            Some(have) => format!("{k}={have} (want {v})"),
            None => format!("{k} missing (want {v})"),
        })
        .collect();
    if wrong.is_empty() {
        Check::pass(
            "ecr.repository_tags",
            title,
            format!("{TAG_MANAGED}=true, {TAG_PROJECT}={project}"),
        )
    } else {
        Check::fail(
            "ecr.repository_tags",
            title,
            wrong.join(", "),
            format!("`{apply}` adopts the repository and sets its tags"),
        )
    }
}

/// The roles part of the plan (`plan --scope roles`): what apply would
/// change about the two roles, without changing it. With
/// `registry.manage_roles: false` Terraform owns them, so the fix is there.
pub fn roles_summary(plan: &Plan, ecr: &EcrConfig, inv: &Location) -> Check {
    const ID: &str = "ecr.roles_match";
    let title = "the roles in AWS match the configuration";
    // A plan of scope `roles` holds role actions only.
    let role_actions: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    if role_actions.is_empty() {
        Check::pass(ID, title, "apply would change nothing about either role")
    } else {
        let hint = if ecr.manage_roles {
            format!(
                "`{}` shows the change, `{}` makes it",
                inv.command("plan --scope roles"),
                inv.command("apply --scope roles")
            )
        } else {
            "registry.manage_roles is false: `terraform apply` of the rise-aws module (docs/terraform.md) restores them".to_string()
        };
        Check::fail(
            ID,
            title,
            format!("apply would {}", role_actions.join("; ")),
            hint,
        )
    }
}

/// Tags by key, for tests that build observed repositories.
pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RegistryConfig, Source, load_sources};
    use crate::reconcile::plan::{Action, ObservedRole, RoleKind};
    use serde_json::json;
    use std::path::Path;
    use std::sync::Arc;

    fn ecr() -> EcrConfig {
        let text = "registry:\n  type: ecr\n  region: us-east-1\n  account_id: '123456789012'\n  \
             repo_prefix: rise/\n  role_arn: arn:aws:iam::123456789012:role/ctl\n  \
             push_role_arn: arn:aws:iam::123456789012:role/push\n\
             auth:\n  hs256_secret: 0123456789abcdef0123456789abcdef\n"
            .to_string();
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

    fn inv() -> Location {
        Location::new(Path::new("config"), "development")
    }

    fn p(s: &str) -> ProjectName {
        ProjectName::parse(s).unwrap()
    }

    fn repo(tags_: &[(&str, &str)]) -> ObservedRepository {
        ObservedRepository::made_elsewhere(tags(tags_))
    }

    fn observed(repos: &[(&str, ObservedRepository)]) -> ObservedState {
        ObservedState {
            repositories: repos
                .iter()
                .map(|(n, r)| (n.to_string(), r.clone()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_controller_is_the_role_or_a_session_of_it() {
        let e = ecr();
        assert!(caller_is_controller(
            "arn:aws:iam::123456789012:role/ctl",
            &e
        ));
        assert!(caller_is_controller(
            "arn:aws:sts::123456789012:assumed-role/ctl/rise",
            &e
        ));
        assert!(!caller_is_controller(
            "arn:aws:sts::123456789012:assumed-role/ctl2/rise",
            &e
        ));
        assert!(!caller_is_controller("arn:aws:iam::123456789012:root", &e));
    }

    #[test]
    fn a_missing_repository_fails_and_skips_what_depends_on_it() {
        let checks = repository(&ecr(), &p("my-app"), &observed(&[]), &[], &inv());
        assert_eq!(checks[0].outcome, super::super::Outcome::Fail);
        assert_eq!(
            checks[0].hint.as_deref(),
            Some("`rise-registry apply` creates it")
        );
        assert!(
            checks[1..]
                .iter()
                .all(|c| c.outcome == super::super::Outcome::Skipped)
        );
    }

    #[test]
    fn a_repository_under_another_prefix_names_the_prefix_key() {
        let all = vec!["apps/my-app".to_string(), "rise/other".to_string()];
        let checks = repository(&ecr(), &p("my-app"), &observed(&[]), &all, &inv());
        assert!(
            checks[0].detail.contains("ECR has apps/my-app"),
            "{}",
            checks[0].detail
        );
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("registry.repo_prefix is `rise/`")
        );
    }

    #[test]
    fn tags_and_orphans_are_checked() {
        let good = repo(&[("rise:managed", "true"), ("rise:project", "my-app")]);
        let checks = repository(
            &ecr(),
            &p("my-app"),
            &observed(&[("rise/my-app", good)]),
            &[],
            &inv(),
        );
        assert!(checks.iter().all(Check::ok), "{checks:?}");
        let orphan = repo(&[
            ("rise:managed", "true"),
            ("rise:project", "my-app"),
            ("rise:orphaned", "true"),
        ]);
        let checks = repository(
            &ecr(),
            &p("my-app"),
            &observed(&[("rise/my-app", orphan)]),
            &[],
            &inv(),
        );
        assert_eq!(checks[2].outcome, super::super::Outcome::Fail);
        let stranger = repo(&[]);
        let checks = repository(
            &ecr(),
            &p("my-app"),
            &observed(&[("rise/my-app", stranger)]),
            &[],
            &inv(),
        );
        assert_eq!(
            checks[1].detail,
            "rise:managed missing (want true), rise:project missing (want my-app)"
        );
    }

    fn push_role(policy: serde_json::Value, trust: serde_json::Value) -> ObservedRole {
        ObservedRole {
            trust,
            policies: BTreeMap::from([("rise-push".to_string(), policy)]),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn push_permissions_name_the_missing_actions() {
        let e = ecr();
        let full = json!({"Statement": [
            {"Effect": "Allow", "Action": PUSH_ACTIONS, "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/rise/*"},
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
        let mut state = observed(&[]);
        state.push = Some(push_role(full, json!({})));
        assert!(push_permissions(&e, &p("my-app"), &state, &inv()).ok());
        let login_only = json!({"Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
        state.push = Some(push_role(login_only, json!({})));
        let check = push_permissions(&e, &p("my-app"), &state, &inv());
        assert!(!check.ok());
        assert!(
            check
                .detail
                .starts_with("its inline policies do not allow ecr:BatchCheckLayerAvailability, "),
            "{}",
            check.detail
        );
    }

    #[test]
    fn the_session_scope_check_passes_for_the_built_policy() {
        let check = session_scope(&ecr(), &p("my-app"), &[p("my-app"), p("my-app2")]);
        assert!(check.ok(), "{check:?}");
        assert!(
            check.detail.contains("6 neighbours refused"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn refusal_hints_point_at_the_document_that_is_wrong() {
        let e = ecr();
        let trust_other = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/someone"}}]});
        let mut state = observed(&[]);
        state.push = Some(push_role(json!({}), trust_other));
        assert!(
            push_role_refusal_hint(&e, Some(&state), &inv())
                .starts_with("the push role's trust policy does not trust the controller role")
        );
        let trust_ctl = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/ctl"}}]});
        state.push = Some(push_role(json!({}), trust_ctl));
        state.controller = Some(push_role(json!({}), json!({})));
        assert!(
            push_role_refusal_hint(&e, Some(&state), &inv())
                .starts_with("the controller role's policy does not allow sts:AssumeRole")
        );
    }

    #[test]
    fn the_roles_summary_lists_what_apply_would_change() {
        let plan = Plan {
            actions: vec![Action::UpdateTrust {
                role: RoleKind::Push,
                name: "push".into(),
                before: json!({}),
                after: json!({}),
            }],
            unmanaged: vec![],
            registry_scanning: None,
            tag_reads: None,
        };
        let check = roles_summary(&plan, &ecr(), &inv());
        assert_eq!(check.detail, "apply would update trust push");
        assert!(roles_summary(&Plan::default(), &ecr(), &inv()).ok());
        assert_eq!(
            check.hint.as_deref(),
            Some(
                "`rise-registry plan --scope roles` shows the change, `rise-registry apply --scope roles` makes it"
            )
        );
    }
}
