//! A plan saved by `plan --out` and applied by `apply FILE`: its format
//! (versioned, docs/plan-format.md) and the fingerprint of the state it
//! was made against, which apply compares with what it observes before
//! it changes anything.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::canonical::canonical;
use super::plan::{ObservedState, Plan, Scope};

/// A fingerprint of what was observed: equal fingerprints mean the account
/// looked the same (policies compared by meaning).
pub fn fingerprint(observed: &ObservedState) -> String {
    let mut value = serde_json::to_value(observed).expect("observed state serializes");
    canonicalize_policies(&mut value);
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonicalize_policies(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("Statement") {
                *value = canonical(value);
                return;
            }
            map.values_mut().for_each(canonicalize_policies);
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize_policies),
        _ => {}
    }
}

/// The `format_version` of plans this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// A plan saved by `plan --out`, applied by `apply FILE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    /// [`fingerprint`] of the state the plan was made against.
    pub observed_fingerprint: String,
    /// What the plan covers (`--scope`); plans saved before scopes existed
    /// covered everything.
    #[serde(default)]
    pub scope: Scope,
    pub plan: Plan,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error(
        "it has plan format {found}, and this rise-registry reads format {FORMAT_VERSION}\n  hint: make the plan again with this version's `plan --out`"
    )]
    Version { found: u64 },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

impl SavedPlan {
    pub fn new(observed_fingerprint: String, scope: Scope, plan: Plan) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            observed_fingerprint,
            scope,
            plan,
        }
    }

    /// Reads a saved plan, checking its format version before its actions,
    /// so a plan from another version is named as such rather than as a
    /// field that does not parse.
    ///
    /// # Errors
    /// Not JSON, another format version, or actions this version does not
    /// know.
    pub fn parse(text: &str) -> Result<Self, SavedPlanError> {
        // Parsed once; the version is read off the tree before the rest (a
        // missing or non-numeric one is reported by the typed read).
        let value: Value = serde_json::from_str(text)?;
        if let Some(found) = value["format_version"].as_u64()
            && found != u64::from(FORMAT_VERSION)
        {
            return Err(SavedPlanError::Version { found });
        }
        Ok(serde_json::from_value(value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_plan_round_trips_and_another_format_version_is_named() {
        let saved = SavedPlan::new("abc".into(), Scope::All, Plan::default());
        let text = serde_json::to_string(&saved).unwrap();
        let back = SavedPlan::parse(&text).unwrap();
        assert_eq!(back.observed_fingerprint, "abc");
        assert_eq!(back.format_version, FORMAT_VERSION);

        let future = text.replace("\"format_version\":1", "\"format_version\":2");
        let e = SavedPlan::parse(&future).unwrap_err().to_string();
        assert!(
            e.starts_with("it has plan format 2, and this rise-registry reads format 1"),
            "{e}"
        );
        // The version is checked before the actions, which may not parse.
        let e = SavedPlan::parse(
            r#"{"format_version": 7, "plan": {"actions": [{"action": "teleport"}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("plan format 7"), "{e}");
        assert!(SavedPlan::parse("{}").is_err());
    }
}
