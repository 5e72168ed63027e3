//! The planner: desired state + observed state → ordered actions. Pure: it
//! reads nothing and changes nothing; executing the actions is another
//! layer's job.
//!
//! Safety rules it keeps:
//! - only repositories under the prefix are considered at all;
//! - a repository without `rise:managed=true` is never changed unless a
//!   project claims it (then it is adopted); otherwise it is reported as
//!   unmanaged;
//! - a managed repository no project claims is tagged `rise:orphaned=true`,
//!   or deleted only when `auto_remove` is on;
//! - inline policies are put or deleted only under the `rise-` names;
//! - a tag is removed only when rise-registry set it from `registry.tags`
//!   (its key is in the `rise:tag-keys` record) and the config dropped it:
//!   tags anyone else put on a repository or role stay.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::same;
use super::desired::{DesiredRole, DesiredState};
use crate::repository_settings::{self, Context, Observed, Setting, Values};
use crate::tags::{TAG_KEYS, TAG_MANAGED, TAG_ORPHANED, TAG_PROJECT, decode_tag_keys};

/// A role as read from IAM (trust policy already URL-decoded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedRole {
    pub trust: Value,
    pub policies: BTreeMap<String, Value>,
    pub tags: BTreeMap<String, String>,
}

/// A repository under the prefix as read from ECR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedRepository {
    pub tags: BTreeMap<String, String>,
    /// Each managed setting as ECR reports it (plan form; `null` where the
    /// repository has none, such as no lifecycle policy).
    #[serde(flatten)]
    pub settings: Observed,
}

/// The registry's scanning configuration (GetRegistryScanningConfiguration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryScanning {
    /// `BASIC` or `ENHANCED`.
    pub scan_type: String,
    /// How many scanning rules (each with its repository filters) it has.
    pub rules: usize,
}

impl RegistryScanning {
    /// Whether this configuration decides which repositories are scanned,
    /// so a repository's own `scanOnPush` flag does nothing: enhanced
    /// scanning, or basic scanning with rules (AWS: a repository no rule
    /// matches is scanned manually only). Basic scanning without rules is
    /// the configuration of a registry nobody set up, where the
    /// repository flag still applies.
    pub fn governs(&self) -> bool {
        self.scan_type != "BASIC" || self.rules > 0
    }

    /// One line for the plan.
    pub fn describe(&self) -> String {
        format!(
            "the registry's scanning configuration ({} scanning, {} rule{}) decides which repositories are scanned, so registry.scan_on_push is neither shown nor applied",
            self.scan_type,
            self.rules,
            if self.rules == 1 { "" } else { "s" }
        )
    }
}

impl ObservedRepository {
    /// A repository made without rise-registry (by hand, by another tool):
    /// ECR's defaults and `tags`.
    pub fn made_elsewhere(tags: BTreeMap<String, String>) -> Self {
        Self {
            tags,
            settings: Observed(Values::ecr_defaults()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ObservedState {
    pub controller: Option<ObservedRole>,
    pub push: Option<ObservedRole>,
    /// Read with the repositories; `None` when they were not read.
    pub registry_scanning: Option<RegistryScanning>,
    /// Every repository whose name starts with the prefix.
    pub repositories: BTreeMap<String, ObservedRepository>,
    /// Set when repository tags could not be read in bulk and were read
    /// one repository at a time: why, for the plan.
    pub tag_reads: Option<String>,
}

impl ObservedState {
    /// An account that holds exactly what `desired` says, as `observe`
    /// would read it back (registry scanning not read): the starting point
    /// of planner tests and benchmarks, which then change what they test.
    pub fn converged(desired: &DesiredState) -> Self {
        let role = |r: &DesiredRole| ObservedRole {
            trust: r.trust.clone(),
            policies: r.policies.clone(),
            tags: r.tags.clone(),
        };
        Self {
            controller: Some(role(&desired.controller)),
            push: Some(role(&desired.push)),
            registry_scanning: None,
            repositories: desired
                .repositories
                .iter()
                .map(|(name, r)| {
                    let repository = ObservedRepository {
                        tags: r.tags.clone(),
                        settings: Observed(r.settings.to_plan()),
                    };
                    (name.clone(), repository)
                })
                .collect(),
            tag_reads: None,
        }
    }
}

/// What plan/apply read and change: `--scope`, defaulting to `all`, or to
/// `repositories` when `registry.manage_roles` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The two roles and the repositories.
    #[default]
    All,
    /// Only the two IAM roles (no ECR call).
    Roles,
    /// Only the ECR repositories (no IAM call): what the controller role
    /// may do.
    Repositories,
}

impl Scope {
    /// The default for this configuration.
    pub fn default_for(manage_roles: bool) -> Self {
        if manage_roles {
            Self::All
        } else {
            Self::Repositories
        }
    }

    pub fn roles(self) -> bool {
        self != Self::Repositories
    }

    pub fn repositories(self) -> bool {
        self != Self::Roles
    }

    /// As written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Roles => "roles",
            Self::Repositories => "repositories",
        }
    }
}

/// Which of the two roles an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    Controller,
    Push,
}

/// One repository setting that changes, before → after. In JSON each is
/// `{"attribute": ..., "before": ..., "after": ...}` (docs/plan-format.md):
/// `before` is what AWS reported, which may be a value rise-registry never
/// sets (such as `IMMUTABLE_WITH_EXCLUSION`) or `null` (no lifecycle
/// policy); `after` is shown in plan form and read back only as a value
/// rise-registry writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub setting: &'static dyn Setting,
    pub before: Value,
    /// Config form.
    pub after: Value,
}

impl Change {
    /// The attribute's name, as in the JSON.
    pub fn attribute(&self) -> &'static str {
        self.setting.names().attribute
    }

    /// Before and after as JSON values, for display.
    pub fn values(&self) -> (Value, Value) {
        (self.before.clone(), self.setting.to_plan(&self.after))
    }
}

#[derive(Serialize, Deserialize)]
struct ChangeJson {
    attribute: String,
    before: Value,
    after: Value,
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (before, after) = self.values();
        ChangeJson {
            attribute: self.attribute().to_string(),
            before,
            after,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let json = ChangeJson::deserialize(d)?;
        let setting = repository_settings::by_attribute(&json.attribute).ok_or_else(|| {
            let known: Vec<String> = repository_settings::ALL
                .iter()
                .map(|s| format!("`{}`", s.names().attribute))
                .collect();
            // serde's own wording for an unknown tag.
            D::Error::custom(format_args!(
                "unknown variant `{}`, expected one of {}",
                json.attribute,
                known.join(", ")
            ))
        })?;
        Ok(Self {
            setting,
            after: setting.read_plan(&json.after).map_err(D::Error::custom)?,
            before: json.before,
        })
    }
}

/// One step of a plan, in the order it must run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateRole {
        role: RoleKind,
        name: String,
        trust: Value,
        tags: BTreeMap<String, String>,
    },
    UpdateTrust {
        role: RoleKind,
        name: String,
        before: Value,
        after: Value,
    },
    PutRolePolicy {
        role: RoleKind,
        name: String,
        policy: String,
        before: Option<Value>,
        after: Value,
    },
    DeleteRolePolicy {
        role: RoleKind,
        name: String,
        policy: String,
        before: Value,
    },
    /// Role tags, by the rule of [`Action::SetTags`].
    SetRoleTags {
        role: RoleKind,
        name: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    CreateRepository {
        repository: String,
        tags: BTreeMap<String, String>,
        settings: Values,
    },
    /// An unmanaged repository a project claims: it gets the managed tags.
    Adopt {
        repository: String,
        project: String,
    },
    /// The project came back: the orphan tag goes.
    Unorphan {
        repository: String,
    },
    UpdateRepository {
        repository: String,
        changes: Vec<Change>,
    },
    SetTags {
        repository: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    Orphan {
        repository: String,
    },
    DeleteRepository {
        repository: String,
    },
}

impl Action {
    /// The repository this action works on; `None` for role actions.
    pub fn repository(&self) -> Option<&str> {
        match self {
            Self::CreateRepository { repository, .. }
            | Self::Adopt { repository, .. }
            | Self::Unorphan { repository }
            | Self::UpdateRepository { repository, .. }
            | Self::SetTags { repository, .. }
            | Self::Orphan { repository }
            | Self::DeleteRepository { repository } => Some(repository),
            _ => None,
        }
    }

    /// Run order: roles (and their policies) first, then repositories being
    /// created or repaired, orphaning and deletion last.
    fn stage(&self) -> u8 {
        match self {
            Self::CreateRole { .. } => 0,
            Self::UpdateTrust { .. } => 1,
            Self::PutRolePolicy { .. }
            | Self::DeleteRolePolicy { .. }
            | Self::SetRoleTags { .. } => 2,
            Self::CreateRepository { .. } => 3,
            Self::Adopt { .. } | Self::Unorphan { .. } => 4,
            Self::UpdateRepository { .. } | Self::SetTags { .. } => 5,
            Self::Orphan { .. } => 6,
            Self::DeleteRepository { .. } => 7,
        }
    }
}

/// One line naming the action and what it acts on, as apply reports it:
/// `create repository rise/my-app`, `put role policy rise-push/rise-push`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateRole { name, .. } => write!(f, "create role {name}"),
            Self::UpdateTrust { name, .. } => write!(f, "update trust {name}"),
            Self::PutRolePolicy { name, policy, .. } => {
                write!(f, "put role policy {name}/{policy}")
            }
            Self::DeleteRolePolicy { name, policy, .. } => {
                write!(f, "delete role policy {name}/{policy}")
            }
            Self::SetRoleTags { name, .. } => write!(f, "set role tags {name}"),
            Self::CreateRepository { repository, .. } => {
                write!(f, "create repository {repository}")
            }
            Self::Adopt { repository, .. } => write!(f, "adopt {repository}"),
            Self::Unorphan { repository } => write!(f, "unorphan {repository}"),
            Self::UpdateRepository { repository, .. } => {
                write!(f, "update repository {repository}")
            }
            Self::SetTags { repository, .. } => write!(f, "set tags {repository}"),
            Self::Orphan { repository } => write!(f, "orphan {repository}"),
            Self::DeleteRepository { repository } => write!(f, "delete repository {repository}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Repositories under the prefix that are not managed and that no
    /// project claims: reported, never touched.
    pub unmanaged: Vec<String>,
    /// Set when the registry's scanning configuration governs scanning
    /// ([`RegistryScanning::describe`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_scanning: Option<String>,
    /// Set when tags were read one repository at a time (slower, same
    /// result) because the bulk read was refused: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_reads: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The repositories `plan` deletes (with `auto_remove`), images and all.
pub fn deletions(plan: &Plan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteRepository { repository } => Some(repository.as_str()),
            _ => None,
        })
        .collect()
}

/// The repository changes of `plan` that expire images (a lifecycle limit
/// lowered), as `(repository, what it means)`.
/// A repository being adopted counts too when it gets a first lifecycle
/// policy: it was made by hand and may hold any number of images.
pub fn expiring(plan: &Plan) -> Vec<(&str, String)> {
    let adopted: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Adopt { repository, .. } => Some(repository.as_str()),
            _ => None,
        })
        .collect();
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateRepository {
                repository,
                changes,
            } => Some(changes.iter().filter_map(|c| {
                let adopting = adopted.contains(&repository.as_str());
                change_expires(c, adopting)
                    .then(|| (repository.as_str(), c.setting.meaning(&c.before, &c.after)))
            })),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Whether `change` may expire images: a lower limit, a hand-written
/// policy replaced, or (`adopting`) a first policy on a repository made by
/// hand.
pub fn change_expires(change: &Change, adopting: bool) -> bool {
    change.setting.destroys(&change.before, &change.after)
        || (adopting && change.before.is_null() && change.setting.expires_images())
}

/// `names` as `a, b, c and 2 more`.
fn first_few(names: &[&str]) -> String {
    let shown: Vec<&str> = names.iter().take(5).copied().collect();
    match names.len() - shown.len() {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Whether an unattended run may carry out `plan`: at most `max`
/// repository deletions.
///
/// # Errors
/// The refusal, naming how many and the first few.
pub fn check_deletions(plan: &Plan, max: u32) -> Result<(), String> {
    let doomed = deletions(plan);
    if doomed.len() <= max as usize {
        return Ok(());
    }
    Err(format!(
        "this plan deletes {} repositories and their images ({}), more than registry.max_deletions ({max}) allows without review",
        doomed.len(),
        first_few(&doomed)
    ))
}

/// Whether an unattended run may carry out `plan`: at most `max`
/// deletions ([`check_deletions`]) and no lifecycle change that expires
/// images.
///
/// # Errors
/// Each refusal, one per line.
pub fn check_unattended(plan: &Plan, max: u32) -> Result<(), String> {
    let mut refusals: Vec<String> = check_deletions(plan, max).err().into_iter().collect();
    let expiring = expiring(plan);
    if !expiring.is_empty() {
        let names: Vec<&str> = expiring.iter().map(|(r, _)| *r).collect();
        refusals.push(format!(
            "this plan changes lifecycle policies so that images expire in {} {} ({}; {}), which is not done without review",
            names.len(),
            if names.len() == 1 { "repository" } else { "repositories" },
            first_few(&names),
            expiring[0].1
        ));
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals.join("\n"))
    }
}

/// Computes the plan of everything.
pub fn plan(desired: &DesiredState, observed: &ObservedState) -> Plan {
    plan_scope(desired, observed, Scope::All)
}

/// Computes the plan of what `scope` covers; `observed` need hold only
/// that (roles not read count as absent only when they are in scope).
pub fn plan_scope(desired: &DesiredState, observed: &ObservedState, scope: Scope) -> Plan {
    let mut actions = Vec::new();
    if scope.roles() {
        plan_role(
            RoleKind::Controller,
            &desired.controller,
            observed.controller.as_ref(),
            &mut actions,
        );
        plan_role(
            RoleKind::Push,
            &desired.push,
            observed.push.as_ref(),
            &mut actions,
        );
    }
    let mut unmanaged = Vec::new();
    let governing = observed.registry_scanning.as_ref().filter(|s| s.governs());
    if scope.repositories() {
        plan_repositories(
            desired,
            observed,
            governing.is_some(),
            &mut actions,
            &mut unmanaged,
        );
    }
    // Stable: within a stage, the order above (roles, then by name).
    actions.sort_by_key(Action::stage);
    Plan {
        actions,
        unmanaged,
        registry_scanning: governing.map(RegistryScanning::describe),
        tag_reads: observed.tag_reads.clone().filter(|_| scope.repositories()),
    }
}

/// `registry_scans`: the registry's scanning configuration governs, so the
/// repositories' scan-on-push flags are left as they are.
fn plan_repositories(
    desired: &DesiredState,
    observed: &ObservedState,
    registry_scans: bool,
    actions: &mut Vec<Action>,
    unmanaged: &mut Vec<String>,
) {
    for (name, want) in &desired.repositories {
        let Some(have) = observed.repositories.get(name) else {
            actions.push(Action::CreateRepository {
                repository: name.clone(),
                tags: want.tags.clone(),
                settings: want.settings.clone(),
            });
            continue;
        };
        let managed = have.tags.get(TAG_MANAGED).map(String::as_str) == Some("true");
        if !managed {
            actions.push(Action::Adopt {
                repository: name.clone(),
                project: want.project.to_string(),
            });
        } else if have.tags.contains_key(TAG_ORPHANED) {
            actions.push(Action::Unorphan {
                repository: name.clone(),
            });
        }
        let changes = setting_changes(&want.settings, have, &Context { registry_scans });
        if !changes.is_empty() {
            actions.push(Action::UpdateRepository {
                repository: name.clone(),
                changes,
            });
        }
        // Adoption and un-orphaning deal with the rise: markers; the rest
        // of the tags follow the config, and an adopted repository keeps
        // every tag it had.
        let (mut set, remove) = tag_changes(&want.tags, &have.tags, managed);
        if !managed {
            set.remove(TAG_MANAGED);
            set.remove(TAG_PROJECT);
        }
        if !set.is_empty() || !remove.is_empty() {
            actions.push(Action::SetTags {
                repository: name.clone(),
                set,
                remove,
            });
        }
    }
    for (name, have) in &observed.repositories {
        if desired.repositories.contains_key(name) || !name.starts_with(&desired.repo_prefix) {
            continue;
        }
        let managed = have.tags.get(TAG_MANAGED).map(String::as_str) == Some("true");
        if !managed {
            unmanaged.push(name.clone());
        } else if desired.auto_remove {
            actions.push(Action::DeleteRepository {
                repository: name.clone(),
            });
        } else if !have.tags.contains_key(TAG_ORPHANED) {
            actions.push(Action::Orphan {
                repository: name.clone(),
            });
        }
    }
}

fn plan_role(
    kind: RoleKind,
    want: &DesiredRole,
    have: Option<&ObservedRole>,
    actions: &mut Vec<Action>,
) {
    let Some(have) = have else {
        actions.push(Action::CreateRole {
            role: kind,
            name: want.name.clone(),
            trust: want.trust.clone(),
            tags: want.tags.clone(),
        });
        for (policy, doc) in &want.policies {
            actions.push(Action::PutRolePolicy {
                role: kind,
                name: want.name.clone(),
                policy: policy.clone(),
                before: None,
                after: doc.clone(),
            });
        }
        return;
    };
    if !same(&want.trust, &have.trust) {
        actions.push(Action::UpdateTrust {
            role: kind,
            name: want.name.clone(),
            before: have.trust.clone(),
            after: want.trust.clone(),
        });
    }
    for (policy, doc) in &want.policies {
        match have.policies.get(policy) {
            Some(current) if same(current, doc) => {}
            current => actions.push(Action::PutRolePolicy {
                role: kind,
                name: want.name.clone(),
                policy: policy.clone(),
                before: current.cloned(),
                after: doc.clone(),
            }),
        }
    }
    for (policy, doc) in &have.policies {
        if policy.starts_with("rise-") && !want.policies.contains_key(policy) {
            actions.push(Action::DeleteRolePolicy {
                role: kind,
                name: want.name.clone(),
                policy: policy.clone(),
                before: doc.clone(),
            });
        }
    }
    let (set, remove) = tag_changes(&want.tags, &have.tags, true);
    if !set.is_empty() || !remove.is_empty() {
        actions.push(Action::SetRoleTags {
            role: kind,
            name: want.name.clone(),
            set,
            remove,
        });
    }
}

/// The tag changes that bring `have` to `want`: each wanted tag that
/// differs is set; a tag is removed only when rise-registry set it (its key
/// is in the observed [`TAG_KEYS`] record, or it is that record) and the
/// config no longer has it, and only when `may_remove`. A tag anyone else
/// put on the resource is never removed.
fn tag_changes(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
    may_remove: bool,
) -> (BTreeMap<String, String>, Vec<String>) {
    let set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut owned: Vec<String> = have
        .get(TAG_KEYS)
        .map_or_else(Vec::new, |r| decode_tag_keys(r));
    owned.push(TAG_KEYS.to_string());
    let mut remove: Vec<String> = owned
        .into_iter()
        .filter(|k| may_remove && have.contains_key(k) && !want.contains_key(k))
        .collect();
    remove.sort();
    remove.dedup();
    (set, remove)
}

/// The settings of `have` that differ from `want`, in the order of
/// [`repository_settings::ALL`]; a setting that does not apply in
/// `context` is left as it is.
fn setting_changes(want: &Values, have: &ObservedRepository, context: &Context) -> Vec<Change> {
    want.iter()
        .zip(have.settings.0.iter())
        .filter(|((setting, _), _)| setting.applies(context))
        .filter(|((setting, want), (_, have))| setting.to_plan(want) != **have)
        .map(|((setting, want), (_, have))| Change {
            setting,
            before: have.clone(),
            after: want.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_deleting(n: usize) -> Plan {
        let mut actions: Vec<Action> = (0..n)
            .map(|i| Action::DeleteRepository {
                repository: format!("rise/p{i}"),
            })
            .collect();
        actions.push(Action::Orphan {
            repository: "rise/kept".into(),
        });
        Plan {
            actions,
            ..Plan::default()
        }
    }

    #[test]
    fn deletions_beyond_the_limit_are_refused_and_named() {
        assert!(check_deletions(&plan_deleting(5), 5).is_ok());
        assert!(
            check_deletions(&plan_deleting(0), 0).is_ok(),
            "orphaning loses nothing"
        );
        let refusal = check_deletions(&plan_deleting(7), 5).unwrap_err();
        assert_eq!(
            refusal,
            "this plan deletes 7 repositories and their images (rise/p0, rise/p1, rise/p2, rise/p3, rise/p4 and 2 more), more than registry.max_deletions (5) allows without review"
        );
    }
}
