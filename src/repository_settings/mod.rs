//! The settings rise-registry manages on each ECR repository, one file
//! each: how it is written under `registry:` in config, its default, how it
//! is shown in a plan, how it is read from ECR, what a change to it means,
//! and how it is applied. Config, the planner, the renderer and the AWS
//! layer work over [`ALL`] and never name a setting, so adding one is a
//! file here, a line in [`ALL`], its docs and its tests.
//!
//! Values are JSON: the config form (`MUTABLE`, `true`, `100`) is what
//! config holds and `config` prints; a plan shows [`Setting::to_plan`] of
//! it (the lifecycle policy a count stands for), and a saved plan is read
//! back through [`Setting::read_plan`], which accepts only what
//! rise-registry itself would write. Observed values are what ECR reports,
//! in the plan form.
//!
//! A leaf below `config` and `reconcile`: it knows the ECR SDK and
//! [`crate::aws`], nothing of either.

mod lifecycle;
mod scan_on_push;
mod tag_mutability;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::create_repository::builders::CreateRepositoryFluentBuilder;
use aws_sdk_ecr::types::Repository;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use lifecycle::lifecycle_policy;

/// Every managed setting, in the order plans show and apply them.
pub static ALL: &[&dyn Setting] = &[
    &tag_mutability::TagMutability,
    &scan_on_push::ScanOnPush,
    &lifecycle::Lifecycle,
];

/// A future a setting's AWS call returns (object safe, unlike `async fn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a setting is written in config, which the config reader checks
/// (reporting file, key and line) before a setting sees the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `true` or `false`.
    Bool,
    /// One of these words, as written.
    OneOf(&'static [&'static str]),
    /// A whole number in `min..=max`.
    Count { min: u32, max: u32 },
}

/// The three names of a setting. They differ for the older settings, and
/// plans and config files already carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// Under `registry:` in config, and in `config`'s output.
    pub config: &'static str,
    /// In a plan's repository settings and in the observed state.
    pub plan: &'static str,
    /// A change's `attribute` in a plan (docs/plan-format.md).
    pub attribute: &'static str,
}

/// What a setting depends on beyond its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// The registry's scanning configuration decides which repositories
    /// are scanned (see `RegistryScanning::governs`).
    pub registry_scans: bool,
}

/// One managed repository setting. Implementations are unit structs in
/// this module's files, listed in [`ALL`].
pub trait Setting: Sync + Send + 'static {
    fn names(&self) -> Names;

    fn config_kind(&self) -> ConfigKind;

    /// The config value when config does not set it.
    fn default(&self) -> Value;

    /// What a repository created without the setting has (plan form).
    fn ecr_default(&self) -> Value;

    /// The value as a plan shows it and AWS is sent it.
    fn to_plan(&self, want: &Value) -> Value {
        want.clone()
    }

    /// A plan's value back in config form; only a value [`Self::to_plan`]
    /// makes is accepted, so a saved plan cannot carry anything else.
    ///
    /// # Errors
    /// A value rise-registry would not have written, as a sentence.
    fn read_plan(&self, shown: &Value) -> Result<Value, String>;

    /// Whether the setting is shown, planned and applied in `context`.
    fn applies(&self, _context: &Context) -> bool {
        true
    }

    /// The observed value (plan form) of `listed`, as `DescribeRepositories`
    /// returned it, reading more from ECR where the listing lacks it.
    fn observe<'a>(
        &'a self,
        ecr: &'a Client,
        listed: &'a Repository,
    ) -> BoxFuture<'a, anyhow::Result<Value>>;

    /// How a new repository's summary says it (`mutable tags`).
    fn summary(&self, want: &Value) -> String;

    /// How a plan's detail line for a new repository shows it
    /// (`image_tag_mutability: MUTABLE`).
    fn detail(&self, want: &Value) -> String;

    /// What changing `before` (observed) to `want` means, in one line.
    fn meaning(&self, before: &Value, want: &Value) -> String;

    /// Whether changing `before` (observed) to `want` can destroy images
    /// (a lower lifecycle limit expires them): an unattended apply then
    /// refuses it without `--allow-destroy`, as it does deletions.
    fn destroys(&self, _before: &Value, _want: &Value) -> bool {
        false
    }

    /// Whether this setting expires images at all (a first policy on a
    /// repository made by hand may expire some).
    fn expires_images(&self) -> bool {
        false
    }

    /// Whether a plan shows a change as a document diff (policies) rather
    /// than one `before -> after` line.
    fn is_document(&self) -> bool {
        false
    }

    /// Sets the value on the `CreateRepository` call when that call takes
    /// it (`true`); otherwise (`false`) the value is [put](Self::put) right
    /// after the repository is created.
    fn on_create(
        &self,
        create: CreateRepositoryFluentBuilder,
        _want: &Value,
    ) -> (CreateRepositoryFluentBuilder, bool) {
        (create, false)
    }

    /// Sets the value on an existing repository.
    fn put<'a>(
        &'a self,
        ecr: &'a Client,
        repository: &'a str,
        want: &'a Value,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

impl fmt::Debug for dyn Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.names().attribute)
    }
}

impl PartialEq for dyn Setting {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

/// The setting whose change attribute is `attribute`.
pub fn by_attribute(attribute: &str) -> Option<&'static dyn Setting> {
    ALL.iter()
        .copied()
        .find(|s| s.names().attribute == attribute)
}

/// One value per setting of [`ALL`], in its order: the desired settings of
/// a repository (config form), or the observed ones (plan form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values(Vec<Value>);

impl Values {
    /// Every setting's default.
    pub fn defaults() -> Self {
        Self(ALL.iter().map(|s| s.default()).collect())
    }

    /// What ECR gives a repository created with no setting (plan form).
    pub fn ecr_defaults() -> Self {
        Self(ALL.iter().map(|s| s.ecr_default()).collect())
    }

    /// Values made by `value` for each setting, in order.
    pub fn from_fn(mut value: impl FnMut(&'static dyn Setting) -> Value) -> Self {
        Self(ALL.iter().map(|s| value(*s)).collect())
    }

    /// Each setting with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&'static dyn Setting, &Value)> {
        ALL.iter().copied().zip(&self.0)
    }

    /// The value of the setting named `plan_name` in plans.
    ///
    /// # Panics
    /// When no setting has that name: a test's typo, never data.
    pub fn get(&self, plan_name: &str) -> &Value {
        &self.0[index(plan_name)]
    }

    /// Replaces the value of the setting named `plan_name` in plans.
    ///
    /// # Panics
    /// When no setting has that name.
    pub fn set(&mut self, plan_name: &str, value: impl Into<Value>) {
        self.0[index(plan_name)] = value.into();
    }

    /// The values as a plan shows them.
    pub fn to_plan(&self) -> Self {
        Self(self.iter().map(|(s, v)| s.to_plan(v)).collect())
    }

    /// As config writes them: a map by config name.
    pub fn as_config(&self) -> impl Serialize + '_ {
        Keyed(self, |n| n.config)
    }
}

/// `values` as config writes them, for `#[serde(serialize_with)]`.
///
/// # Errors
/// Those of the serializer.
pub fn serialize_config<S: Serializer>(values: &Values, s: S) -> Result<S::Ok, S::Error> {
    values.as_config().serialize(s)
}

fn index(plan_name: &str) -> usize {
    ALL.iter()
        .position(|s| s.names().plan == plan_name)
        .unwrap_or_else(|| panic!("no repository setting is named {plan_name}"))
}

/// A map of `values` under the names `name` picks, in [`ALL`]'s order.
struct Keyed<'a>(&'a Values, fn(Names) -> &'static str);

impl Serialize for Keyed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(ALL.len()))?;
        for (setting, value) in self.0.iter() {
            map.serialize_entry((self.1)(setting.names()), value)?;
        }
        map.end()
    }
}

/// Serialized as the plan shows them: by plan name, in plan form. Only
/// desired values are serialized this way (observed ones are already in
/// plan form: see [`Observed`]).
impl Serialize for Values {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Keyed(&self.to_plan(), |n| n.plan).serialize(s)
    }
}

/// Read back from a saved plan: every setting present, each value one
/// rise-registry writes; keys it does not know are ignored, as serde does
/// for the plan's other objects.
impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(d)?;
        let mut values = Vec::with_capacity(ALL.len());
        for setting in ALL {
            let name = setting.names().plan;
            let shown = map
                .remove(name)
                .ok_or_else(|| D::Error::missing_field(name))?;
            values.push(setting.read_plan(&shown).map_err(D::Error::custom)?);
        }
        Ok(Self(values))
    }
}

/// Observed values, serialized by plan name as they are (already in plan
/// form), for the observed state and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed(pub Values);

impl Serialize for Observed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Keyed(&self.0, |n| n.plan).serialize(s)
    }
}

/// The observed settings of `listed`, each read by its setting.
///
/// # Errors
/// The first read that failed.
pub async fn observe(ecr: &Client, listed: &Repository) -> anyhow::Result<Observed> {
    let mut values = Vec::with_capacity(ALL.len());
    for setting in ALL {
        values.push(setting.observe(ecr, listed).await?);
    }
    Ok(Observed(Values(values)))
}

/// `words` as a config error lists them: `A or B`, `A, B or C`.
pub fn either(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_unique_and_defaults_are_valid_config_values() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                let (a, b) = (a.names(), b.names());
                assert_ne!(a.config, b.config);
                assert_ne!(a.plan, b.plan);
                assert_ne!(a.attribute, b.attribute);
            }
            let default = a.default();
            let ok = match a.config_kind() {
                ConfigKind::Bool => default.is_boolean(),
                ConfigKind::OneOf(words) => default.as_str().is_some_and(|w| words.contains(&w)),
                ConfigKind::Count { min, max } => default
                    .as_u64()
                    .is_some_and(|n| (u64::from(min)..=u64::from(max)).contains(&n)),
            };
            assert!(ok, "{:?}: default {default}", a.names());
            assert_eq!(a.read_plan(&a.to_plan(&default)), Ok(default));
            assert_eq!(by_attribute(a.names().attribute), Some(*a));
        }
    }

    #[test]
    fn values_serialize_in_plan_form_and_read_back_only_that() {
        let mut desired = Values::defaults();
        desired.set("tag_mutability", "IMMUTABLE");
        desired.set("scan_on_push", true);
        desired.set("lifecycle_policy", 30);
        let value = serde_json::to_value(&desired).unwrap();
        assert_eq!(
            value,
            json!({"tag_mutability": "IMMUTABLE", "scan_on_push": true,
                   "lifecycle_policy": lifecycle_policy(30)})
        );
        assert_eq!(
            serde_json::to_string(&desired).unwrap(),
            format!(
                r#"{{"tag_mutability":"IMMUTABLE","scan_on_push":true,"lifecycle_policy":{}}}"#,
                lifecycle_policy(30)
            ),
            "keys in the order of ALL"
        );
        let back: Values = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back, desired);

        let mut other = value.clone();
        other["lifecycle_policy"]["rules"][0]["action"]["type"] = json!("delete-everything");
        let e = serde_json::from_value::<Values>(other).unwrap_err();
        assert!(e.to_string().contains("not a lifecycle policy"), "{e}");
        let mut other = value.clone();
        other["tag_mutability"] = json!("IMMUTABLE_WITH_EXCLUSION");
        assert!(serde_json::from_value::<Values>(other).is_err());
        let mut other = value;
        other.as_object_mut().unwrap().remove("scan_on_push");
        let e = serde_json::from_value::<Values>(other).unwrap_err();
        assert!(e.to_string().contains("scan_on_push"), "{e}");
        assert_eq!(
            serde_json::to_value(desired.as_config()).unwrap(),
            json!({"image_tag_mutability": "IMMUTABLE", "scan_on_push": true, "max_image_count": 30})
        );
    }

    #[test]
    fn lists_read_as_a_sentence() {
        assert_eq!(either(&["MUTABLE", "IMMUTABLE"]), "MUTABLE or IMMUTABLE");
        assert_eq!(either(&["a", "b", "c"]), "a, b or c");
        assert_eq!(either(&["a"]), "a");
    }
}
