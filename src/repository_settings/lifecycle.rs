//! `registry.max_image_count`: the lifecycle policy that keeps the newest
//! N images of a repository and expires the rest. Config holds the count;
//! plans show (and a saved plan must hold exactly) the policy it stands
//! for, which is what AWS is sent and what a reviewer checks.

use anyhow::Context as _;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::Repository;
use serde_json::{Value, json};

use super::{BoxFuture, ConfigKind, Names, Setting};
use crate::aws::sdk::aws_error;

pub struct Lifecycle;

/// The lifecycle policy that keeps the newest `count` images.
pub fn lifecycle_policy(count: u32) -> Value {
    json!({"rules": [{
        "rulePriority": 1,
        "description": format!("Keep the newest {count} images"),
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": count},
        "action": {"type": "expire"},
    }]})
}

/// The count kept by `policy`, when it is exactly a policy
/// [`lifecycle_policy`] makes.
fn parse(policy: &Value) -> Option<u32> {
    let count = policy["rules"][0]["selection"]["countNumber"].as_u64()?;
    let count = u32::try_from(count).ok()?;
    (lifecycle_policy(count) == *policy).then_some(count)
}

fn count(want: &Value) -> u32 {
    want.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_default()
}

impl Setting for Lifecycle {
    fn names(&self) -> Names {
        Names {
            config: "max_image_count",
            plan: "lifecycle_policy",
            attribute: "lifecycle_policy",
        }
    }

    fn config_kind(&self) -> ConfigKind {
        ConfigKind::Count {
            min: 1,
            max: 10_000,
        }
    }

    fn default(&self) -> Value {
        100.into()
    }

    fn ecr_default(&self) -> Value {
        Value::Null
    }

    fn to_plan(&self, want: &Value) -> Value {
        lifecycle_policy(count(want))
    }

    fn read_plan(&self, shown: &Value) -> Result<Value, String> {
        parse(shown).map(Value::from).ok_or_else(|| {
            "not a lifecycle policy rise-registry writes (keep the newest N images)".to_string()
        })
    }

    /// Lifecycle policies have no bulk read: one `GetLifecyclePolicy` each;
    /// `null` when the repository has none.
    fn observe<'a>(
        &'a self,
        ecr: &'a Client,
        listed: &'a Repository,
    ) -> BoxFuture<'a, anyhow::Result<Value>> {
        Box::pin(async move {
            let name = listed.repository_name.as_deref().unwrap_or_default();
            match ecr.get_lifecycle_policy().repository_name(name).send().await {
                Ok(out) => Ok(out
                    .lifecycle_policy_text
                    .map(|t| serde_json::from_str(&t))
                    .transpose()
                    .with_context(|| {
                        format!("ECR returned the lifecycle policy of repository {name} as a document that is not JSON")
                    })?
                    .unwrap_or(Value::Null)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_lifecycle_policy_not_found_exception()) =>
                {
                    Ok(Value::Null)
                }
                Err(e) => Err(aws_error(
                    &format!("reading the lifecycle policy of {name}"),
                    e,
                )),
            }
        })
    }

    fn summary(&self, want: &Value) -> String {
        format!("keeps the newest {} images", count(want))
    }

    fn detail(&self, want: &Value) -> String {
        format!("keep {} images", count(want))
    }

    fn meaning(&self, before: &Value, want: &Value) -> String {
        let after = count(want);
        if before.is_null() {
            return format!(
                "lifecycle: keep the newest {after} images (no policy before): images beyond the newest {after} will expire"
            );
        }
        match parse(before) {
            None => format!(
                "lifecycle: keep the newest {after} images, replacing a policy rise-registry did not write"
            ),
            Some(was) if was > after => format!(
                "lifecycle: keep the newest {after} images (was {was}): up to {} images per repository will expire",
                was - after
            ),
            Some(was) => format!(
                "lifecycle: keep the newest {after} images (was {was}): nothing more expires"
            ),
        }
    }

    fn is_document(&self) -> bool {
        true
    }

    /// Fewer images kept than before, or a policy of unknown effect (one
    /// someone wrote by hand) replaced: either may expire images that were
    /// kept. A repository without a policy (adopted, or its policy deleted
    /// by hand) had no limit to lower: it gets the configured one.
    fn expires_images(&self) -> bool {
        true
    }

    fn destroys(&self, before: &Value, want: &Value) -> bool {
        parse(before).map_or(!before.is_null(), |was| was > count(want))
    }

    fn put<'a>(
        &'a self,
        ecr: &'a Client,
        repository: &'a str,
        want: &'a Value,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            ecr.put_lifecycle_policy()
                .repository_name(repository)
                .lifecycle_policy_text(self.to_plan(want).to_string())
                .send()
                .await
                .map_err(|e| {
                    aws_error(&format!("setting the lifecycle policy of {repository}"), e)
                })?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_policy_rise_registry_writes_reads_back_as_a_count() {
        assert_eq!(parse(&lifecycle_policy(30)), Some(30));
        assert_eq!(parse(&json!({"rules": []})), None);
        let mut other = lifecycle_policy(30);
        other["rules"][0]["action"]["type"] = json!("delete-everything");
        assert_eq!(parse(&other), None);
        assert_eq!(Lifecycle.read_plan(&lifecycle_policy(7)), Ok(7.into()));
        assert!(Lifecycle.read_plan(&Value::Null).is_err());
    }

    #[test]
    fn a_lower_limit_or_a_replaced_hand_written_policy_destroys_and_nothing_else() {
        assert!(Lifecycle.destroys(&lifecycle_policy(100), &10.into()));
        assert!(!Lifecycle.destroys(&lifecycle_policy(10), &100.into()));
        assert!(!Lifecycle.destroys(&lifecycle_policy(10), &10.into()));
        assert!(!Lifecycle.destroys(&Value::Null, &10.into()));
        assert!(Lifecycle.destroys(&json!({"rules": []}), &10_000.into()));
    }
}
