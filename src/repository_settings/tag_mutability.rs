//! `registry.image_tag_mutability`: whether a push may move an existing
//! tag (`MUTABLE`, ECR's default) or fails (`IMMUTABLE`).

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::create_repository::builders::CreateRepositoryFluentBuilder;
use aws_sdk_ecr::types::{ImageTagMutability, Repository};
use serde_json::Value;

use super::{BoxFuture, ConfigKind, Names, Setting, either};
use crate::aws::sdk::aws_error;

/// The values rise-registry sets. ECR reports others
/// (`IMMUTABLE_WITH_EXCLUSION`), which a plan shows as they are.
const WORDS: &[&str] = &["MUTABLE", "IMMUTABLE"];

pub struct TagMutability;

fn word(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

impl Setting for TagMutability {
    fn names(&self) -> Names {
        Names {
            config: "image_tag_mutability",
            plan: "tag_mutability",
            attribute: "image_tag_mutability",
        }
    }

    fn config_kind(&self) -> ConfigKind {
        ConfigKind::OneOf(WORDS)
    }

    fn default(&self) -> Value {
        "MUTABLE".into()
    }

    fn ecr_default(&self) -> Value {
        "MUTABLE".into()
    }

    fn read_plan(&self, shown: &Value) -> Result<Value, String> {
        match shown.as_str() {
            Some(w) if WORDS.contains(&w) => Ok(shown.clone()),
            _ => Err(format!("expected {}, found {shown}", either(WORDS))),
        }
    }

    fn observe<'a>(
        &'a self,
        _ecr: &'a Client,
        listed: &'a Repository,
    ) -> BoxFuture<'a, anyhow::Result<Value>> {
        let found = listed
            .image_tag_mutability
            .as_ref()
            // Absent only from emulators; MUTABLE is ECR's own default.
            .map_or("MUTABLE", |m| m.as_str());
        Box::pin(std::future::ready(Ok(found.into())))
    }

    fn summary(&self, want: &Value) -> String {
        format!("{} tags", word(want).to_lowercase())
    }

    fn detail(&self, want: &Value) -> String {
        format!("image_tag_mutability: {}", word(want))
    }

    fn meaning(&self, before: &Value, want: &Value) -> String {
        let was = word(before).to_lowercase();
        if word(want) == "IMMUTABLE" {
            format!("tags become immutable (were {was}): pushing an existing tag fails")
        } else {
            format!("tags become mutable (were {was}): a push may move an existing tag")
        }
    }

    fn on_create(
        &self,
        create: CreateRepositoryFluentBuilder,
        want: &Value,
    ) -> (CreateRepositoryFluentBuilder, bool) {
        (
            create.image_tag_mutability(ImageTagMutability::from(word(want))),
            true,
        )
    }

    fn put<'a>(
        &'a self,
        ecr: &'a Client,
        repository: &'a str,
        want: &'a Value,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            ecr.put_image_tag_mutability()
                .repository_name(repository)
                .image_tag_mutability(ImageTagMutability::from(word(want)))
                .send()
                .await
                .map_err(|e| aws_error(&format!("setting tag mutability of {repository}"), e))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_says_what_a_push_of_an_existing_tag_does() {
        let s = TagMutability;
        assert_eq!(
            s.meaning(&"MUTABLE".into(), &"IMMUTABLE".into()),
            "tags become immutable (were mutable): pushing an existing tag fails"
        );
        assert_eq!(
            s.meaning(&"IMMUTABLE_WITH_EXCLUSION".into(), &"MUTABLE".into()),
            "tags become mutable (were immutable_with_exclusion): a push may move an existing tag"
        );
        assert_eq!(s.summary(&"IMMUTABLE".into()), "immutable tags");
    }

    #[test]
    fn a_saved_plan_may_only_ask_for_what_config_can() {
        let s = TagMutability;
        assert!(s.read_plan(&"IMMUTABLE".into()).is_ok());
        for bad in [
            Value::from("IMMUTABLE_WITH_EXCLUSION"),
            Value::from(true),
            Value::Null,
        ] {
            assert!(s.read_plan(&bad).is_err(), "{bad}");
        }
    }
}
