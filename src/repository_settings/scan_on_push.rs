//! `registry.scan_on_push`: whether ECR scans each image as it is pushed.
//! The repository-level flag does nothing where the registry's scanning
//! configuration decides (enhanced scanning, or basic scanning with rules),
//! so there it is neither shown, planned nor sent.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::create_repository::builders::CreateRepositoryFluentBuilder;
use aws_sdk_ecr::types::{ImageScanningConfiguration, Repository};
use serde_json::Value;

use super::{BoxFuture, ConfigKind, Context, Names, Setting};
use crate::aws::sdk::aws_error;

pub struct ScanOnPush;

fn on(value: &Value) -> bool {
    value.as_bool().unwrap_or_default()
}

impl Setting for ScanOnPush {
    fn names(&self) -> Names {
        Names {
            config: "scan_on_push",
            plan: "scan_on_push",
            attribute: "scan_on_push",
        }
    }

    fn config_kind(&self) -> ConfigKind {
        ConfigKind::Bool
    }

    fn default(&self) -> Value {
        true.into()
    }

    fn ecr_default(&self) -> Value {
        false.into()
    }

    fn read_plan(&self, shown: &Value) -> Result<Value, String> {
        if shown.is_boolean() {
            Ok(shown.clone())
        } else {
            Err(format!("expected true or false, found {shown}"))
        }
    }

    fn applies(&self, context: &Context) -> bool {
        !context.registry_scans
    }

    fn observe<'a>(
        &'a self,
        _ecr: &'a Client,
        listed: &'a Repository,
    ) -> BoxFuture<'a, anyhow::Result<Value>> {
        let found = listed
            .image_scanning_configuration
            .as_ref()
            .is_some_and(|s| s.scan_on_push);
        Box::pin(std::future::ready(Ok(found.into())))
    }

    fn summary(&self, want: &Value) -> String {
        if on(want) {
            "scanned on push"
        } else {
            "not scanned on push"
        }
        .to_string()
    }

    fn detail(&self, want: &Value) -> String {
        format!("scan_on_push: {}", on(want))
    }

    fn meaning(&self, _before: &Value, want: &Value) -> String {
        if on(want) {
            "scan on push: images are scanned for vulnerabilities as they are pushed"
        } else {
            "scan on push: off; images are no longer scanned as they are pushed"
        }
        .to_string()
    }

    fn on_create(
        &self,
        create: CreateRepositoryFluentBuilder,
        want: &Value,
    ) -> (CreateRepositoryFluentBuilder, bool) {
        (
            create.image_scanning_configuration(configuration(want)),
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
            ecr.put_image_scanning_configuration()
                .repository_name(repository)
                .image_scanning_configuration(configuration(want))
                .send()
                .await
                .map_err(|e| aws_error(&format!("setting scan on push of {repository}"), e))?;
            Ok(())
        })
    }
}

fn configuration(want: &Value) -> ImageScanningConfiguration {
    ImageScanningConfiguration::builder()
        .scan_on_push(on(want))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registrys_scanning_configuration_takes_the_flag_out_of_the_plan() {
        let s = ScanOnPush;
        assert!(s.applies(&Context::default()));
        assert!(!s.applies(&Context {
            registry_scans: true
        }));
        assert_eq!(s.summary(&false.into()), "not scanned on push");
        assert!(s.read_plan(&"true".into()).is_err());
    }
}
