//! What the account should hold, computed from the configuration alone.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::config::{EcrConfig, Project};
use crate::naming::ProjectName;
use crate::repository_settings::Values;
use crate::roles::{RenderError, TemplateVars, role_documents};
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRepository {
    pub project: ProjectName,
    pub tags: BTreeMap<String, String>,
    /// Config form; serialized as a plan shows them.
    pub settings: Values,
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
    let settings = &ecr.repository;
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
