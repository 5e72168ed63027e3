//! The `ecr` checks' decisions, from values the live side gathered: what
//! GetCallerIdentity and AssumeRole answered, the observed roles and
//! repositories, the plan, how far a project's push session got. Pure;
//! each function returns the [`Check`]s it decides.

use std::collections::BTreeMap;

use hyper::StatusCode;

use super::Check;
use crate::config::EcrConfig;
use crate::config::Location;
use crate::naming::ProjectName;
use crate::policy::eval::{allows, any_allows, trusts};
use crate::policy::{PUSH_ACTIONS, repository_arn, session_policy};
use crate::reconcile::plan::{Action, ObservedRepository, ObservedState, Plan, RoleKind};
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

/// What GetCallerIdentity answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerIdentity {
    /// The caller's ARN.
    Answered(String),
    /// AWS's error and its cause (unreachable, no or bad credentials,
    /// denied), which picks the hint.
    Failed {
        error: String,
        cause: crate::aws::Cause,
    },
}

impl CallerIdentity {
    pub fn arn(&self) -> Option<&str> {
        match self {
            Self::Answered(arn) => Some(arn),
            Self::Failed { .. } => None,
        }
    }
}

/// Why the checks that need AWS did not run.
const NO_AWS: &str = "AWS did not answer GetCallerIdentity";

/// AWS answers and names the caller.
pub fn caller_identity(seen: &CallerIdentity) -> Check {
    const ID: &str = "ecr.caller_identity";
    let title = "AWS answers and names the caller";
    match seen {
        CallerIdentity::Answered(arn) => Check::pass(ID, title, arn.clone()),
        CallerIdentity::Failed { error, cause } => {
            let hint = match cause {
                // GetCallerIdentity needs no permission: a denial comes
                // from an explicit deny (an SCP, a permissions boundary).
                crate::aws::Cause::AccessDenied => {
                    "the caller is denied even GetCallerIdentity, which needs no permission: look for an explicit deny in a service control policy or permissions boundary"
                }
                other => other
                    .hint()
                    .unwrap_or("AWS refused GetCallerIdentity; its code and message say why"),
            };
            Check::fail(ID, title, format!("GetCallerIdentity: {error}"), hint)
        }
    }
}

/// How the controller role's session was had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerRole {
    /// Not tried: GetCallerIdentity did not answer.
    NoCaller,
    /// The caller is the controller role ([`caller_is_controller`]).
    IsCaller,
    /// The caller assumed it.
    Assumed { caller: String },
    /// AssumeRole answered without credentials.
    NoCredentials,
    /// AssumeRole refused, with AWS's words.
    Refused { caller: String, error: String },
}

/// The controller role is this identity, or one it can become.
pub fn controller_role(seen: &ControllerRole, ecr: &EcrConfig) -> Check {
    const ID: &str = "ecr.controller_role";
    let title = "the controller role is the caller or can be assumed";
    let role = &ecr.role_arn;
    match seen {
        ControllerRole::NoCaller => Check::skipped(ID, title, NO_AWS),
        ControllerRole::IsCaller => Check::pass(ID, title, format!("the caller is {role}")),
        ControllerRole::Assumed { caller } => {
            Check::pass(ID, title, format!("{caller} assumed {role}"))
        }
        ControllerRole::NoCredentials => Check::fail(
            ID,
            title,
            "AssumeRole returned no credentials",
            "try again; AWS answered without credentials",
        ),
        ControllerRole::Refused { caller, error } => Check::fail(
            ID,
            title,
            format!("{caller} cannot assume {role}: {error}"),
            "run doctor as the controller role, where serve runs (on Kubernetes: `kubectl exec deploy/rise-registry -- rise-registry doctor`), or with credentials that registry.role_arn's trust policy accepts (registry.trusted_principals)",
        ),
    }
}

/// Both roles and the repositories under the prefix could be read. `read`
/// is `None` when AWS did not answer GetCallerIdentity (nothing was
/// tried), else the observed state or the reconcile error's text (whose
/// `\n  hint: ` part, when there is one, becomes the fix).
pub fn read_state(read: Option<&Result<ObservedState, String>>, ecr: &EcrConfig) -> Check {
    const ID: &str = "ecr.read_state";
    let title = "the roles and repositories can be read";
    match read {
        None => Check::skipped(ID, title, NO_AWS),
        Some(Ok(state)) => Check::pass(
            ID,
            title,
            format!(
                "{} repositories under `{}`",
                state.repositories.len(),
                ecr.repo_prefix
            ),
        ),
        Some(Err(text)) => {
            let (detail, hint) = text.split_once("\n  hint: ").unwrap_or((
                text,
                "doctor reads both roles (iam:GetRole, iam:ListRolePolicies, iam:GetRolePolicy) and the repositories (ecr:DescribeRepositories, ecr:ListTagsForResource, ecr:GetLifecyclePolicy): run it with credentials that may",
            ));
            Check::fail(ID, title, detail, hint)
        }
    }
}

/// Why the checks that need the observed state did not run.
const NOT_READ: &str = "the roles and repositories could not be read";

/// The roles match the configuration: `plan` is `None` when the state could
/// not be read, else the roles' plan or the error rendering it.
pub fn roles_match(plan: Option<&Result<Plan, String>>, ecr: &EcrConfig, inv: &Location) -> Check {
    const ID: &str = "ecr.roles_match";
    let title = "the roles in AWS match the configuration";
    match plan {
        None => Check::skipped(ID, title, NOT_READ),
        Some(Ok(plan)) => roles_summary(plan, ecr, inv),
        Some(Err(e)) => Check::fail(
            ID,
            title,
            e.clone(),
            "this build cannot render the role documents; report it",
        ),
    }
}

/// Why the push role's per-project checks would only repeat a failure
/// already reported: `ecr.roles_match` found the push role itself missing
/// or different (trust, policy), so every project would fail for that one
/// cause. Tags alone block nothing: they do not change what the role may
/// do.
pub fn push_role_blocker(plan: Option<&Result<Plan, String>>) -> Option<String> {
    let Some(Ok(plan)) = plan else {
        return None;
    };
    let changes: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::CreateRole {
                    role: RoleKind::Push,
                    ..
                } | Action::UpdateTrust {
                    role: RoleKind::Push,
                    ..
                } | Action::PutRolePolicy {
                    role: RoleKind::Push,
                    ..
                } | Action::DeleteRolePolicy {
                    role: RoleKind::Push,
                    ..
                }
            )
        })
        .map(ToString::to_string)
        .collect();
    (!changes.is_empty()).then(|| {
        format!(
            "blocked by ecr.roles_match: the push role is not as configured (apply would {})",
            changes.join("; ")
        )
    })
}

/// A warning when there is no project to check.
pub fn projects_configured(projects: &[ProjectName]) -> Option<Check> {
    projects.is_empty().then(|| {
        Check::warn(
            "ecr.projects",
            "projects are configured",
            "no project to check",
            "add projects under `projects:` in the config (docs/configuration.md)",
        )
    })
}

/// The project's repository and the push role's permissions on it, from
/// the observed state; skipped when it could not be read.
pub fn project_state(
    ecr: &EcrConfig,
    project: &ProjectName,
    observed: Option<&ObservedState>,
    all_names: &[String],
    inv: &Location,
    push_blocker: Option<&str>,
) -> Vec<Check> {
    match observed {
        Some(state) => {
            let mut checks = repository(ecr, project, state, all_names, inv);
            checks.push(match push_blocker {
                Some(reason) => Check::skipped(
                    "ecr.push_role_permissions",
                    "the push role allows push and pull on the repository",
                    reason,
                ),
                None => push_permissions(ecr, project, state, inv),
            });
            checks
        }
        None => [
            ("ecr.repository", "the repository exists"),
            ("ecr.repository_tags", "it carries the managed tags"),
            ("ecr.repository_not_orphaned", "it is not orphaned"),
            (
                "ecr.push_role_permissions",
                "the push role allows push and pull on the repository",
            ),
        ]
        .into_iter()
        .map(|(id, title)| Check::skipped(id, title, NOT_READ))
        .collect(),
    }
}

/// How far a project's push session got: what serve does for a
/// credentials request, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushSession {
    /// Not tried: there is no controller session; `aws_answered` tells
    /// whether GetCallerIdentity answered.
    NoController { aws_answered: bool },
    /// Not tried: the push role is known not to be as configured
    /// ([`push_role_blocker`]'s reason).
    Blocked(String),
    /// AssumeRole of the push role with the session policy refused.
    AssumeRefused(String),
    /// The push role was assumed; the ECR login was refused.
    LoginRefused(String),
    /// A login for `registry_url`, and what `{endpoint}/v2/` answered to it
    /// (the status, or why no answer came).
    LoggedIn {
        registry_url: String,
        endpoint: String,
        v2: Result<StatusCode, String>,
    },
}

/// The push role assumed with the project's session policy, the ECR login
/// with those credentials, and the registry's `/v2/` with that login; a
/// refused AssumeRole is explained from the observed roles when there are
/// some.
pub fn push_session(
    seen: &PushSession,
    ecr: &EcrConfig,
    project: &ProjectName,
    observed: Option<&ObservedState>,
    inv: &Location,
) -> Vec<Check> {
    let assume = |outcome: Result<(), String>| {
        let title = "the controller assumes the push role with the session policy";
        match outcome {
            Ok(()) => Check::pass(
                "ecr.push_role",
                title,
                format!(
                    "{} assumed as {}",
                    ecr.push_role_arn,
                    crate::policy::role_session_name(project)
                ),
            ),
            Err(e) => Check::fail(
                "ecr.push_role",
                title,
                e,
                push_role_refusal_hint(ecr, observed, inv),
            ),
        }
    };
    let login_title = "ECR issues a login to the scoped session";
    let v2_title = "the registry endpoint accepts the login at /v2/";
    let skipped = |reason: &str| {
        [
            Check::skipped("ecr.registry_login", login_title, reason),
            Check::skipped("ecr.registry_v2", v2_title, reason),
        ]
    };
    match seen {
        PushSession::NoController { aws_answered } => {
            let reason = if *aws_answered {
                "the controller role could not be assumed"
            } else {
                NO_AWS
            };
            let mut checks = vec![Check::skipped(
                "ecr.push_role",
                "the controller assumes the push role with the session policy",
                reason,
            )];
            checks.extend(skipped(reason));
            checks
        }
        PushSession::Blocked(reason) => {
            let mut checks = vec![Check::skipped(
                "ecr.push_role",
                "the controller assumes the push role with the session policy",
                reason,
            )];
            checks.extend(skipped(reason));
            checks
        }
        PushSession::AssumeRefused(e) => {
            let mut checks = vec![assume(Err(e.clone()))];
            checks.extend(skipped("the push role could not be assumed"));
            checks
        }
        PushSession::LoginRefused(e) => vec![
            assume(Ok(())),
            Check::fail(
                "ecr.registry_login",
                login_title,
                e.clone(),
                format!(
                    "the push role's policy must allow ecr:GetAuthorizationToken on `*`: `{}` restores it",
                    inv.command("apply")
                ),
            ),
            Check::skipped("ecr.registry_v2", v2_title, "ECR issued no login"),
        ],
        PushSession::LoggedIn {
            registry_url,
            endpoint,
            v2,
        } => vec![
            assume(Ok(())),
            Check::pass(
                "ecr.registry_login",
                login_title,
                format!("a login for {registry_url}"),
            ),
            match v2 {
                Ok(status) if *status == StatusCode::OK => Check::pass(
                    "ecr.registry_v2",
                    v2_title,
                    format!("{endpoint}/v2/ answered 200"),
                ),
                Ok(status) => Check::fail(
                    "ecr.registry_v2",
                    v2_title,
                    format!("{endpoint}/v2/ answered {status}"),
                    "the login was refused: check that registry.region and registry.account_id name the registry the repositories live in",
                ),
                Err(e) => Check::fail(
                    "ecr.registry_v2",
                    v2_title,
                    e.clone(),
                    "the registry endpoint could not be reached from here: check registry.endpoint_url, DNS and any proxy",
                ),
            },
        ],
    }
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

    use super::super::Outcome;

    /// Each check's id and outcome, in order.
    fn outcomes(checks: &[Check]) -> Vec<(&'static str, Outcome)> {
        checks.iter().map(|c| (c.id, c.outcome)).collect()
    }

    #[test]
    fn only_a_push_role_that_differs_in_what_it_may_do_blocks_its_checks() {
        let tags_only = Plan {
            actions: vec![Action::SetRoleTags {
                role: RoleKind::Push,
                name: "rise-backend-ecr-push".into(),
                set: tags(&[("team", "platform")]),
                remove: vec![],
            }],
            ..Plan::default()
        };
        assert_eq!(push_role_blocker(Some(&Ok(tags_only))), None);
        let controller_only = Plan {
            actions: vec![Action::UpdateTrust {
                role: RoleKind::Controller,
                name: "rise-backend".into(),
                before: serde_json::json!({}),
                after: serde_json::json!({}),
            }],
            ..Plan::default()
        };
        assert_eq!(push_role_blocker(Some(&Ok(controller_only))), None);
        let trust = Plan {
            actions: vec![Action::UpdateTrust {
                role: RoleKind::Push,
                name: "rise-backend-ecr-push".into(),
                before: serde_json::json!({}),
                after: serde_json::json!({}),
            }],
            ..Plan::default()
        };
        assert_eq!(
            push_role_blocker(Some(&Ok(trust))).as_deref(),
            Some(
                "blocked by ecr.roles_match: the push role is not as configured (apply would update trust rise-backend-ecr-push)"
            )
        );
        assert_eq!(push_role_blocker(None), None);
        assert_eq!(push_role_blocker(Some(&Err("x".into()))), None);
    }

    #[test]
    fn the_caller_identity_fix_tells_unreachable_from_refused() {
        let arn = "arn:aws:iam::123456789012:user/me";
        let check = caller_identity(&CallerIdentity::Answered(arn.into()));
        assert_eq!(
            (check.id, check.outcome),
            ("ecr.caller_identity", Outcome::Pass)
        );
        assert_eq!(check.detail, arn);

        let down = caller_identity(&CallerIdentity::Failed {
            error: "dispatch failure: connection refused".into(),
            cause: crate::aws::Cause::Unreachable,
        });
        assert_eq!(down.outcome, Outcome::Fail);
        assert_eq!(
            down.detail,
            "GetCallerIdentity: dispatch failure: connection refused"
        );
        assert!(
            down.hint.as_deref().unwrap().starts_with(
                "AWS could not be reached; check registry.region, registry.endpoint_url"
            )
        );
        // Each cause its own fix, never another's.
        for (cause, start) in [
            (
                crate::aws::Cause::NoCredentials,
                "no AWS credentials were found",
            ),
            (
                crate::aws::Cause::ExpiredCredentials,
                "the AWS credentials have expired",
            ),
            (
                crate::aws::Cause::InvalidCredentials,
                "AWS does not accept these credentials",
            ),
            (
                crate::aws::Cause::AccessDenied,
                "the caller is denied even GetCallerIdentity",
            ),
            (crate::aws::Cause::Other, "AWS refused GetCallerIdentity"),
        ] {
            let refused = caller_identity(&CallerIdentity::Failed {
                error: "Code: message".into(),
                cause,
            });
            assert_eq!(refused.outcome, Outcome::Fail);
            let hint = refused.hint.unwrap();
            assert!(hint.starts_with(start), "{cause:?}: {hint}");
        }
    }

    #[test]
    fn the_controller_role_is_the_caller_assumed_or_explained() {
        let e = ecr();
        let check = |seen| controller_role(&seen, &e);

        let skipped = check(ControllerRole::NoCaller);
        assert_eq!(
            (skipped.id, skipped.outcome),
            ("ecr.controller_role", Outcome::Skipped)
        );
        assert_eq!(skipped.detail, "AWS did not answer GetCallerIdentity");

        let itself = check(ControllerRole::IsCaller);
        assert_eq!(itself.outcome, Outcome::Pass);
        assert_eq!(
            itself.detail,
            "the caller is arn:aws:iam::123456789012:role/ctl"
        );

        let assumed = check(ControllerRole::Assumed {
            caller: "arn:aws:iam::123456789012:user/me".into(),
        });
        assert_eq!(assumed.outcome, Outcome::Pass);
        assert_eq!(
            assumed.detail,
            "arn:aws:iam::123456789012:user/me assumed arn:aws:iam::123456789012:role/ctl"
        );

        let empty = check(ControllerRole::NoCredentials);
        assert_eq!(empty.outcome, Outcome::Fail);
        assert_eq!(empty.detail, "AssumeRole returned no credentials");

        let refused = check(ControllerRole::Refused {
            caller: "arn:aws:iam::123456789012:user/me".into(),
            error: "AccessDenied".into(),
        });
        assert_eq!(refused.outcome, Outcome::Fail);
        assert_eq!(
            refused.detail,
            "arn:aws:iam::123456789012:user/me cannot assume arn:aws:iam::123456789012:role/ctl: AccessDenied"
        );
        assert!(
            refused
                .hint
                .as_deref()
                .unwrap()
                .contains("registry.trusted_principals")
        );
    }

    #[test]
    fn reading_the_state_counts_repositories_or_splits_the_hint_off_the_error() {
        let e = ecr();
        let skipped = read_state(None, &e);
        assert_eq!(
            (skipped.id, skipped.outcome),
            ("ecr.read_state", Outcome::Skipped)
        );
        assert_eq!(skipped.detail, "AWS did not answer GetCallerIdentity");

        let read = Ok(observed(&[("rise/a", repo(&[])), ("rise/b", repo(&[]))]));
        let pass = read_state(Some(&read), &e);
        assert_eq!(pass.outcome, Outcome::Pass);
        assert_eq!(pass.detail, "2 repositories under `rise/`");

        let with_hint = Err("iam:GetRole denied\n  hint: allow iam:GetRole".to_string());
        let fail = read_state(Some(&with_hint), &e);
        assert_eq!(fail.outcome, Outcome::Fail);
        assert_eq!(fail.detail, "iam:GetRole denied");
        assert_eq!(fail.hint.as_deref(), Some("allow iam:GetRole"));

        let bare = Err("throttled".to_string());
        let fail = read_state(Some(&bare), &e);
        assert_eq!(fail.detail, "throttled");
        assert!(
            fail.hint
                .as_deref()
                .unwrap()
                .starts_with("doctor reads both roles (iam:GetRole, ")
        );
    }

    #[test]
    fn the_roles_check_needs_the_state_and_a_plan() {
        let e = ecr();
        let skipped = roles_match(None, &e, &inv());
        assert_eq!(
            (skipped.id, skipped.outcome),
            ("ecr.roles_match", Outcome::Skipped)
        );
        assert_eq!(
            skipped.detail,
            "the roles and repositories could not be read"
        );
        let broken = roles_match(Some(&Err("bad template".into())), &e, &inv());
        assert_eq!(broken.outcome, Outcome::Fail);
        assert_eq!(broken.detail, "bad template");
        assert_eq!(
            broken.hint.as_deref(),
            Some("this build cannot render the role documents; report it")
        );
        let same = roles_match(Some(&Ok(Plan::default())), &e, &inv());
        assert_eq!(same, roles_summary(&Plan::default(), &e, &inv()));
    }

    #[test]
    fn no_projects_warns() {
        let check = projects_configured(&[]).unwrap();
        assert_eq!((check.id, check.outcome), ("ecr.projects", Outcome::Warn));
        assert_eq!(check.detail, "no project to check");
        assert!(projects_configured(&[p("my-app")]).is_none());
    }

    #[test]
    fn an_unread_state_skips_the_project_s_repository_checks() {
        let checks = project_state(&ecr(), &p("my-app"), None, &[], &inv(), None);
        assert_eq!(
            outcomes(&checks),
            [
                ("ecr.repository", Outcome::Skipped),
                ("ecr.repository_tags", Outcome::Skipped),
                ("ecr.repository_not_orphaned", Outcome::Skipped),
                ("ecr.push_role_permissions", Outcome::Skipped),
            ]
        );
        assert!(
            checks
                .iter()
                .all(|c| c.detail == "the roles and repositories could not be read")
        );
        let state = observed(&[]);
        let read = project_state(&ecr(), &p("my-app"), Some(&state), &[], &inv(), None);
        assert_eq!(read.len(), 4);
        assert_eq!(read[0].outcome, Outcome::Fail, "no repository: {read:?}");
        assert_eq!(read[3].id, "ecr.push_role_permissions");
    }

    #[test]
    fn a_push_session_without_a_controller_skips_all_three_steps() {
        let e = ecr();
        for (aws_answered, reason) in [
            (false, "AWS did not answer GetCallerIdentity"),
            (true, "the controller role could not be assumed"),
        ] {
            let checks = push_session(
                &PushSession::NoController { aws_answered },
                &e,
                &p("my-app"),
                None,
                &inv(),
            );
            assert_eq!(
                outcomes(&checks),
                [
                    ("ecr.push_role", Outcome::Skipped),
                    ("ecr.registry_login", Outcome::Skipped),
                    ("ecr.registry_v2", Outcome::Skipped),
                ]
            );
            assert!(checks.iter().all(|c| c.detail == reason), "{checks:?}");
        }
    }

    #[test]
    fn a_refused_push_role_is_explained_and_the_rest_skipped() {
        let e = ecr();
        let checks = push_session(
            &PushSession::AssumeRefused("AccessDenied: not trusted".into()),
            &e,
            &p("my-app"),
            None,
            &inv(),
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("ecr.push_role", Outcome::Fail),
                ("ecr.registry_login", Outcome::Skipped),
                ("ecr.registry_v2", Outcome::Skipped),
            ]
        );
        assert_eq!(checks[0].detail, "AccessDenied: not trusted");
        assert_eq!(
            checks[0].hint,
            Some(push_role_refusal_hint(&e, None, &inv()))
        );
        assert_eq!(checks[1].detail, "the push role could not be assumed");
        // With the roles read, the fix names the document that is wrong.
        let state = observed(&[]);
        let checks = push_session(
            &PushSession::AssumeRefused("AccessDenied".into()),
            &e,
            &p("my-app"),
            Some(&state),
            &inv(),
        );
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("the push role arn:aws:iam::123456789012:role/push does not exist")
        );
    }

    #[test]
    fn a_refused_login_fails_and_skips_the_endpoint() {
        let checks = push_session(
            &PushSession::LoginRefused("AccessDeniedException".into()),
            &ecr(),
            &p("my-app"),
            None,
            &inv(),
        );
        assert_eq!(
            outcomes(&checks),
            [
                ("ecr.push_role", Outcome::Pass),
                ("ecr.registry_login", Outcome::Fail),
                ("ecr.registry_v2", Outcome::Skipped),
            ]
        );
        assert_eq!(
            checks[0].detail,
            format!(
                "arn:aws:iam::123456789012:role/push assumed as {}",
                crate::policy::role_session_name(&p("my-app"))
            )
        );
        assert_eq!(checks[1].detail, "AccessDeniedException");
        assert_eq!(
            checks[1].hint.as_deref(),
            Some(
                "the push role's policy must allow ecr:GetAuthorizationToken on `*`: `rise-registry apply` restores it"
            )
        );
        assert_eq!(checks[2].detail, "ECR issued no login");
    }

    #[test]
    fn the_endpoint_accepts_the_login_or_says_what_it_answered() {
        let session = |v2| PushSession::LoggedIn {
            registry_url: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            endpoint: "https://ecr.example".into(),
            v2,
        };
        let run = |v2| push_session(&session(v2), &ecr(), &p("my-app"), None, &inv());

        let ok = run(Ok(StatusCode::OK));
        assert_eq!(
            outcomes(&ok),
            [
                ("ecr.push_role", Outcome::Pass),
                ("ecr.registry_login", Outcome::Pass),
                ("ecr.registry_v2", Outcome::Pass),
            ]
        );
        assert_eq!(
            ok[1].detail,
            "a login for 123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(ok[2].detail, "https://ecr.example/v2/ answered 200");

        let refused = run(Ok(StatusCode::UNAUTHORIZED));
        assert_eq!(refused[2].outcome, Outcome::Fail);
        assert_eq!(
            refused[2].detail,
            "https://ecr.example/v2/ answered 401 Unauthorized"
        );
        assert!(
            refused[2]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("the login was refused: check that registry.region")
        );

        let down = run(Err("https://ecr.example/v2/: connection refused".into()));
        assert_eq!(down[2].outcome, Outcome::Fail);
        assert_eq!(
            down[2].detail,
            "https://ecr.example/v2/: connection refused"
        );
        assert!(
            down[2]
                .hint
                .as_deref()
                .unwrap()
                .starts_with("the registry endpoint could not be reached from here")
        );
    }
}
