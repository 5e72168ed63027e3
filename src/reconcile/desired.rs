//! What the account should hold, computed from the configuration alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{EcrConfig, Project, TagMutability};
use crate::naming::ProjectName;
use crate::policy::roles::{RenderError, TemplateVars, role_documents};
use crate::tags::{TAG_MANAGED, TAG_PROJECT, configured_tags};

/// Names of the inline policies rise-registry (and the Terraform module) puts.
pub(crate) const CONTROLLER_POLICY_NAME: &str = "rise-controller";
pub(crate) const PUSH_POLICY_NAME: &str = "rise-push";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRole {
    pub name: String,
    pub trust: Value,
    /// Inline policies by name.
    pub policies: BTreeMap<String, Value>,
    pub tags: BTreeMap<String, String>,
}

/// The settings of a repository that rise-registry sets. In plans (JSON and
/// saved) the image count is written as the lifecycle policy that keeps
/// it, which is what AWS is sent and what a reviewer checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositorySettings {
    pub tag_mutability: TagMutability,
    pub scan_on_push: bool,
    /// How many images the lifecycle policy keeps.
    #[serde(rename = "lifecycle_policy", with = "lifecycle_json")]
    pub max_image_count: u32,
}

/// A max image count as the lifecycle policy JSON [`lifecycle_policy`]
/// makes of it, and back: only a policy exactly of that shape reads back,
/// so a saved plan cannot smuggle in another policy.
pub mod lifecycle_json {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    use super::lifecycle_policy;

    pub(crate) fn serialize<S: Serializer>(count: &u32, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&lifecycle_policy(*count), s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let value = Value::deserialize(d)?;
        parse(&value).ok_or_else(|| {
            D::Error::custom(
                "not a lifecycle policy rise-registry writes (keep the newest N images)",
            )
        })
    }

    /// The count kept by `value`, when it is exactly a policy
    /// [`lifecycle_policy`] makes.
    pub fn parse(value: &Value) -> Option<u32> {
        let count = value["rules"][0]["selection"]["countNumber"].as_u64()?;
        let count = u32::try_from(count).ok()?;
        (lifecycle_policy(count) == *value).then_some(count)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRepository {
    pub project: ProjectName,
    pub tags: BTreeMap<String, String>,
    pub settings: RepositorySettings,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredState {
    pub repo_prefix: String,
    pub auto_remove: bool,
    pub controller: DesiredRole,
    pub push: DesiredRole,
    /// By repository name (`{repo_prefix}{project}`).
    pub repositories: BTreeMap<String, DesiredRepository>,
}

/// The lifecycle policy that keeps the newest `count` images.
pub fn lifecycle_policy(count: u32) -> Value {
    json!({"rules": [{
        "rulePriority": 1,
        "description": format!("Keep the newest {count} images"),
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": count},
        "action": {"type": "expire"},
    }]})
}

/// # Errors
/// A policy template that does not render (a bug in the template), or a
/// repository name over ECR's limit (config validation prevents it).
pub fn desired_state(ecr: &EcrConfig, projects: &[Project]) -> Result<DesiredState, RenderError> {
    let docs = role_documents(&TemplateVars::from_config(ecr))?;
    let role = |name: &str, trust: Value, policy_name: &str, policy: Value| DesiredRole {
        name: name.to_string(),
        trust,
        policies: BTreeMap::from([(policy_name.to_string(), policy)]),
        tags: configured_tags(&ecr.tags),
    };
    let settings = RepositorySettings {
        tag_mutability: ecr.image_tag_mutability,
        scan_on_push: ecr.scan_on_push,
        max_image_count: ecr.max_image_count,
    };
    let mut repositories = BTreeMap::new();
    for project in projects {
        let name = ecr
            .repo_prefix
            .repository_name(&project.name)
            .map_err(|e| RenderError {
                template: "repository",
                message: e.message,
            })?;
        let mut tags = configured_tags(&ecr.tags);
        tags.insert(TAG_MANAGED.into(), "true".into());
        tags.insert(TAG_PROJECT.into(), project.name.to_string());
        repositories.insert(
            name,
            DesiredRepository {
                project: project.name.clone(),
                tags,
                settings: settings.clone(),
            },
        );
    }
    Ok(DesiredState {
        repo_prefix: ecr.repo_prefix.to_string(),
        auto_remove: ecr.auto_remove,
        controller: role(
            ecr.role_arn.name(),
            docs.controller_trust,
            CONTROLLER_POLICY_NAME,
            docs.controller_policy,
        ),
        push: role(
            ecr.push_role_arn.name(),
            docs.push_trust,
            PUSH_POLICY_NAME,
            docs.push_policy,
        ),
        repositories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_write_the_lifecycle_policy_and_read_back_only_that_shape() {
        let settings = RepositorySettings {
            tag_mutability: TagMutability::Immutable,
            scan_on_push: true,
            max_image_count: 30,
        };
        let value = serde_json::to_value(&settings).unwrap();
        assert_eq!(
            value,
            json!({"tag_mutability": "IMMUTABLE", "scan_on_push": true,
                   "lifecycle_policy": lifecycle_policy(30)})
        );
        let back: RepositorySettings = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back, settings);

        let mut other = value;
        other["lifecycle_policy"]["rules"][0]["action"]["type"] = json!("delete-everything");
        let e = serde_json::from_value::<RepositorySettings>(other).unwrap_err();
        assert!(e.to_string().contains("not a lifecycle policy"), "{e}");
        assert_eq!(lifecycle_json::parse(&json!({"rules": []})), None);
    }
}
